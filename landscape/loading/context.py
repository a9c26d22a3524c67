"""The analysis context: what every analysis starts from, built in one place.

:func:`build_context` turns an :class:`AnalysisRequest` (checkpoint paths, the model and data
sources, device, dtype, seed, batch size: typed values, no argv) into an
:class:`AnalysisContext`: the models on the device (each checked against the data with one
forward pass), the data, this process's :class:`~landscape.parallel.Partition` (under
``torchrun`` the process group is joined here, and only here) and the batch policy. The
command line (``cli/common.py``), the late-SAM experiment and :func:`landscape.load` all go
through it, so a checkpoint one of them reads, all of them read the same way.

The analysis subset (:meth:`AnalysisContext.subset`) is one rule everywhere (docs/
architecture.md, "Vocabulary"): ``samples`` examples of one split, drawn without augmentation by
``subset_seed`` alone, so that ``--seed`` (directions, probes) never changes the examples.

Importing this module imports no torch: the CLI reads :data:`FIXED_BATCH` while it builds its
parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from landscape.data import Data
    from landscape.loading.loader import DataSource, LoadedModel, ModelSource
    from landscape.parallel import Partition

# Where the batch defines the operator or the BatchNorm statistics (``--bn train``,
# recalibration) the batch size is part of the result and is never tuned: this is the batch of
# every command and of the experiment then, unless a batch size is given.
FIXED_BATCH = 512


@dataclass(frozen=True)
class BatchPolicy:
    """The batch rule of every analysis: ``batch_size`` when given (``--batch-size``); else
    :data:`FIXED_BATCH` where batches define the result and the fastest batch, measured
    (:mod:`landscape.batching`), everywhere else."""

    batch_size: int | None = None

    def fixed(self, examples: int | None = None) -> int:
        """The batch where it defines the result: the given one, else :data:`FIXED_BATCH`
        (``examples`` if fewer)."""
        if self.batch_size:
            return self.batch_size
        return FIXED_BATCH if examples is None else min(FIXED_BATCH, examples)


@dataclass(frozen=True)
class AnalysisRequest:
    """What to load, as typed values: the checkpoints (possibly none: models are then loaded
    later with :meth:`AnalysisContext.load`), how to build their models and where the data come
    from, the device (``"auto"`` like ``--device``) and dtype, ``seed`` (seeds torch, NumPy and
    ``random`` when given), the batch size (None: :class:`BatchPolicy`'s rule) and whether to
    join ``torchrun``'s process group when launched by it (``distributed``)."""

    checkpoints: tuple[str | Path, ...] = ()
    model: ModelSource | None = None
    data: DataSource | None = None
    device: Any = "auto"  # a name ("auto", "cpu", "cuda:1") or a torch.device
    dtype: Any = "float32"  # a name or a torch.dtype
    seed: int | None = None
    batch_size: int | None = None
    distributed: bool = True


@dataclass
class AnalysisContext:
    """The loaded inputs of an analysis: ``targets`` (models on ``device`` in ``dtype``, eval
    mode), ``data``, this process's ``partition`` (SINGLE outside ``torchrun``) and the batch
    policy. ``sharding`` is the seam of sharded models (issue 26): None means every process
    holds whole models."""

    targets: list[LoadedModel]
    data: Data
    device: torch.device
    dtype: torch.dtype
    partition: Partition
    model_source: ModelSource
    data_source: DataSource
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    sharding: Any = None

    @property
    def loss(self) -> str:
        """The loss's name (``--loss``)."""
        return self.data_source.loss

    def load(self, paths: list[str | Path]) -> list[LoadedModel]:
        """More checkpoints on this context's data, device and dtype, with the same sources and
        checks as the first (:func:`landscape.loading.loader.load_models`)."""
        from landscape.loading.loader import load_models

        targets, _ = load_models(
            paths, self.model_source, self.data_source, self.device, self.dtype, data=self.data
        )
        return targets

    def subset(
        self, split: str, samples: int | None, subset_seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The analysis subset of ``split`` on the device (:func:`analysis_subset`)."""
        return analysis_subset(self.data, split, samples, subset_seed, self.device, self.dtype)


def build_context(request: AnalysisRequest, *, data: Data | None = None) -> AnalysisContext:
    """Load what ``request`` names: the one set-up call of every analysis.

    ``data``: data already in memory (the experiment's, loaded once for training) instead of
    the request's data source; the models are still checked against them.
    """
    import torch

    from landscape.devices import resolve_device, resolve_dtype, seed_everything
    from landscape.distributed import join
    from landscape.loading.loader import DataSource, ModelSource, load_data, load_models
    from landscape.parallel import SINGLE

    model_source = request.model or ModelSource()
    data_source = request.data or DataSource()
    device = resolve_device(request.device) if isinstance(request.device, str) else request.device
    dtype = resolve_dtype(request.dtype) if isinstance(request.dtype, str) else request.dtype
    device = torch.device(device)
    partition = SINGLE
    if request.distributed:
        partition, device = join(device)  # torchrun: this rank's share; else one process
    if request.seed is not None:
        seed_everything(request.seed)
    if request.checkpoints:
        targets, data = load_models(
            list(request.checkpoints), model_source, data_source, device, dtype, data=data
        )
    else:
        targets, data = [], data if data is not None else load_data(data_source)
    return AnalysisContext(
        targets=targets,
        data=data,
        device=device,
        dtype=dtype,
        partition=partition,
        model_source=model_source,
        data_source=data_source,
        batch=BatchPolicy(request.batch_size),
    )


def analysis_subset(
    data: Data,
    split: str,
    samples: int | None,
    subset_seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` examples of ``data``'s ``split`` (all of it if None or smaller), drawn by
    ``subset_seed``, on ``device``: inputs in ``dtype``, class labels as integers and
    regression targets in ``dtype``."""
    from landscape.data import fixed_subset
    from landscape.errors import UserError

    x, y = fixed_subset(*data.split(split), samples, subset_seed)
    if x.shape[0] == 0:
        raise UserError(f"the {split} split of {data.name} is empty")
    x = x.to(device=device, dtype=dtype)
    y = y.to(device) if not y.is_floating_point() else y.to(device=device, dtype=dtype)
    return x, y


def say_short_splits(samples: int | None, dataset: str, sizes: dict[str, int]) -> None:
    """One line when ``--samples`` (``samples``; None when not given) asks for more examples
    than a split has: all of them are used, and the result records the count used."""
    short = {split: n for split, n in sizes.items() if samples is not None and n < samples}
    if short:
        have = ", ".join(f"the {split} split {n:,}" for split, n in short.items())
        import logging

        logging.getLogger("landscape.data").warning(
            "--samples %s is more than %s has (%s); using all of them (recorded: samples=%d)",
            f"{samples:,}",
            dataset,
            have,
            next(iter(sizes.values())),
        )
