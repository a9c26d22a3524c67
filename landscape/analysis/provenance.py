"""The provenance of an analysis result: one checkpoint, the options, how it was computed."""

from __future__ import annotations

from typing import Any

from landscape.parallel import SINGLE, Partition
from landscape.results import Provenance


def provenance_of(
    target,
    options: Any,
    samples: int,
    seconds: float,
    config: dict[str, Any],
    partition: Partition = SINGLE,
) -> Provenance:
    """The :class:`Provenance` of a result of checkpoint ``target`` computed with ``options``
    (an analysis options dataclass: ``split``, ``bn_mode``, ``dtype``, ``seed``) on ``samples``
    examples in ``seconds``, by the processes of ``partition``."""
    from landscape.loading.loader import provenance

    attrs = provenance(
        target,
        split=getattr(options, "split", "train"),
        samples=samples,
        bn_mode=options.bn_mode,
        dtype=options.dtype,
        seed=options.seed,
        seconds=seconds,
        config=config,
    )
    return Provenance(**attrs, **partition.provenance())
