"""torch.distributed behind the :class:`~landscape.parallel.Partition` seam.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``), :func:`partition_from_environment` joins the process group -- NCCL when
this rank computes on CUDA, Gloo otherwise -- and returns a :class:`TorchPartition`; without
torchrun it returns :data:`~landscape.parallel.SINGLE` and nothing changes. An API user with a
process group of their own passes it to :class:`TorchPartition` directly.

Every collective has a timeout (``LANDSCAPE_COLLECTIVE_TIMEOUT`` seconds, default 600), so a
rank that died can never leave the others waiting for ever; a collective that fails because
another rank is gone is a one-line :class:`PeerFailed` (that rank printed the cause).

Each command's run makes one set-up call, :func:`join`: this rank's device and partition, and
every rank but the writer made quiet (no progress, no results on stdout; errors still shown).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from landscape.errors import UserError
from landscape.parallel import SINGLE, Partition

DEFAULT_TIMEOUT_S = 600.0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_device(requested: torch.device) -> torch.device:
    """``cuda`` becomes this rank's own GPU, ``cuda:LOCAL_RANK``; other devices are kept."""
    if requested.type == "cuda" and requested.index is None and launched_by_torchrun():
        return torch.device("cuda", local_rank())
    return requested


def collective_timeout() -> datetime.timedelta:
    seconds = float(os.environ.get("LANDSCAPE_COLLECTIVE_TIMEOUT", DEFAULT_TIMEOUT_S))
    return datetime.timedelta(seconds=seconds)


class PeerFailed(UserError):
    """A collective failed: another rank of this run stopped (its own error says why) or did
    not answer within the collective timeout."""


def _collective(what: str, call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except (RuntimeError, dist.DistError) as exc:  # Gloo: "Connection closed by peer", timeouts
        raise PeerFailed(
            f"{what} across processes failed ({_cause(exc)}): another rank of this run stopped "
            "(see its error) or did not answer within LANDSCAPE_COLLECTIVE_TIMEOUT "
            f"({collective_timeout().total_seconds():.0f} s)"
        ) from exc


def _cause(exc: BaseException) -> str:
    """The gist of a backend's error: ``Connection closed by peer [127.0.0.1]:48026``, without
    the source location in front and the advice after it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # "[.../pair.cc:561] "
    return text.split(". ")[0][:120]


@dataclass(frozen=True)
class TorchPartition(Partition):
    """A :class:`Partition` whose collectives are torch.distributed's, on ``group``."""

    group: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def of_group(cls, group: Any = None) -> TorchPartition:
        """The partition of an initialised process group (the default group when None)."""
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised; call init_process_group")
        return cls(
            rank=dist.get_rank(group),
            world_size=dist.get_world_size(group),
            backend=str(dist.get_backend(group)),
            group=group,
        )

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        _collective("a sum", dist.all_reduce, tensor, op=dist.ReduceOp.SUM, group=self.group)
        return tensor

    def gather(self, value: Any) -> list[Any]:
        values: list[Any] = [None] * self.world_size
        _collective("a gather", dist.all_gather_object, values, value, group=self.group)
        return values

    def broadcast(self, value: Any) -> Any:
        box = [value]
        _collective("a broadcast", dist.broadcast_object_list, box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        _collective("a barrier", dist.barrier, group=self.group)


def partition_from_environment(device: torch.device) -> Partition:
    """Join torchrun's process group (once) and return this rank's partition, or SINGLE."""
    if not launched_by_torchrun():
        return SINGLE
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=collective_timeout())
    return TorchPartition.of_group()


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def join(device: torch.device) -> tuple[Partition, torch.device]:
    """The set-up call of every command: ``(partition, device)`` for this process.

    Without torchrun: ``(SINGLE, device)``, nothing else changes. Under torchrun: ``cuda``
    becomes ``cuda:LOCAL_RANK``, the process group is joined (NCCL on CUDA, Gloo otherwise),
    and every rank but the writer is made quiet: its stdout goes to ``/dev/null`` and its log
    shows errors only, so progress, warnings and results appear once (rank 0's). Errors of
    any rank still reach stderr as ``landscape: error: ...``.
    """
    device = rank_device(device)
    partition = partition_from_environment(device)
    if partition.is_distributed and not partition.is_writer:
        _quiet()
    return partition, device


def _quiet() -> None:
    warnings.filterwarnings("ignore")  # rank 0 shows the same warnings once
    logging.getLogger().setLevel(logging.ERROR)
    logging.getLogger("landscape").setLevel(logging.ERROR)
    sys.stdout.flush()
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- for the rest of this process
    from landscape import interrupt

    # A stop signal's message on this rank: rank 0 keeps the files and says what is saved.
    interrupt.note_saved("by rank 0, the only writer (see its message)")
