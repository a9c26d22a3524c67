"""Which share of the work this process owns, and how the shares are combined.

Every analysis that can be split asks the same four questions, and :class:`Partition` is the
one object that answers them:

* **Examples** -- :meth:`Partition.example_range`: the contiguous share of ``n`` examples this
  process sums over (shares differ in size by at most one; their union is ``range(n)`` in order).
* **Grid points** -- :meth:`Partition.owned`: the points of a job this process evaluates, dealt
  round-robin so that every process gets a balanced, deterministic share whatever is left to do
  (a resumed surface deals only its missing points).
* **Partial sums** -- :meth:`Partition.sum_`: the all-reduced sum of a tensor, in place. A mean
  over all examples is the sum of each share's weighted partial sum, with the weights of one
  process (``len(batch) / n`` for the global ``n``), so the answer does not depend on the split.
* **Writing** -- :attr:`Partition.is_writer`: exactly one process writes files;
  :meth:`Partition.gather` brings every process's values to all of them, so that the writer can
  save the whole result.

A single process is the trivial case (:data:`SINGLE`: rank 0 of 1, every collective the
identity); :mod:`landscape.distributed` plugs ``torch.distributed`` into the same interface.
Numerical code takes a ``Partition`` and never asks where it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Partition:
    """This process's share of the work: rank ``rank`` of ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    backend: str | None = None  # "gloo", "nccl", ...; None for a single process

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} of world size {self.world_size} is not a process")

    @property
    def is_writer(self) -> bool:
        """Whether this process writes files (rank 0: one writer per job)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def example_range(self, n: int) -> range:
        """The examples ``[start, stop)`` of ``n`` that this process sums over."""
        start = n * self.rank // self.world_size
        stop = n * (self.rank + 1) // self.world_size
        return range(start, stop)

    def owned(self, points: Sequence[T]) -> list[T]:
        """The points of ``points`` (in their order) that this process evaluates: every
        ``world_size``-th one from position ``rank``."""
        return list(points[self.rank :: self.world_size])

    # Collectives: the identity for one process; landscape.distributed overrides them.

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Replace ``tensor`` by its sum over all processes (in place) and return it."""
        return tensor

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order, on every process (picklable values)."""
        return [value]

    def broadcast(self, value: Any) -> Any:
        """The writer's ``value`` on every process (picklable values)."""
        return value

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def provenance(self) -> dict[str, Any]:
        """What a result records of how it was computed in parallel."""
        return {"world_size": self.world_size, "backend": self.backend or "none"}


SINGLE = Partition()
"""One process doing all of the work."""
