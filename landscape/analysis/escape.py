"""SAM escape from a checkpoint: what ``landscape escape`` computes, and how.

:func:`escape_curve` runs real SAM steps from the model's weights (:func:`landscape.escape.
sam_escape`: distance, loss, lambda_1 per step and the early growth rate of the distance);
:func:`analyse_escape` does so from one checkpoint and saves the
:class:`~landscape.results.escape.EscapeCurve` as ``escape/<name>``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from landscape import store
from landscape.analysis.provenance import provenance_of
from landscape.analysis.saving import save_result
from landscape.loading.context import FIXED_BATCH
from landscape.parallel import SINGLE, Partition
from landscape.progress import Reporter
from landscape.results.escape import EscapeCurve

log = logging.getLogger("landscape.escape")


@dataclass
class EscapeOptions:
    """The SAM steps (:func:`landscape.escape.sam_escape`). ``batch_size`` None: FIXED_BATCH
    with ``bn_mode="train"`` (the batch defines the steps), else the fastest for gradients."""

    rho: float
    lr: float
    steps: int
    unnormalized: bool = False
    momentum: float = 0.0
    weight_decay: float = 0.0
    eig_every: int = 0
    fit_window: tuple[int, int] | None = None
    divergence_factor: float = 100.0
    bn_mode: str = "eval"
    batch_size: int | None = None
    loss: str = "cross-entropy"
    dtype: str = "float32"
    seed: int = 0


def escape_batch(options: EscapeOptions, model, loss_fn, x, y) -> int:
    """The batch of the steps (see :class:`EscapeOptions`), measured and cached for gradients
    (:mod:`landscape.batching`) where it does not change them."""
    from landscape import batching

    if options.batch_size:
        return options.batch_size
    if options.bn_mode == "train":
        return FIXED_BATCH
    return batching.gradient_batch_size(model, loss_fn, x, y).batch_size


def escape_curve(
    model: torch.nn.Module,
    loss_fn,
    x: torch.Tensor,
    y: torch.Tensor,
    options: EscapeOptions,
    reporter: Reporter | None = None,
    phase: str = "SAM escape",
    partition: Partition = SINGLE,
):
    """The escape from ``model``'s weights (which the steps move: pass a copy to keep them), one
    phase of ``reporter``; a :class:`landscape.escape.EscapeResult`."""
    from landscape.escape import sam_escape

    reporter = reporter or Reporter(enabled=False)
    # measured by the writer, taken by every process (the steps must be the same everywhere)
    batch = escape_batch(options, model, loss_fn, x, y) if partition.is_writer else None
    batch_size = partition.broadcast(batch)
    with reporter.phase(phase, options.steps, unit="steps") as progress:
        return sam_escape(
            model,
            loss_fn,
            x,
            y,
            rho=options.rho,
            lr=options.lr,
            steps=options.steps,
            unnormalized=options.unnormalized,
            momentum=options.momentum,
            weight_decay=options.weight_decay,
            eig_every=options.eig_every,
            batch_size=batch_size,
            bn_mode=options.bn_mode,
            fit_window=options.fit_window,
            divergence_factor=options.divergence_factor,
            progress=progress,
            partition=partition,
        )


def analyse_escape(
    options: EscapeOptions,
    target,
    x: torch.Tensor,
    y: torch.Tensor,
    out: str | Path,
    *,
    name: str | None = None,
    partition: Partition = SINGLE,
    reporter: Reporter | None = None,
) -> tuple[str, EscapeCurve]:
    """The escape from checkpoint ``target`` (:class:`landscape.loading.loader.LoadedModel`),
    written to ``escape/<name>`` of ``out`` (default name: the checkpoint's) by the writer
    process."""
    from landscape.losses import make_loss

    started = time.monotonic()
    result = escape_curve(
        target.model, make_loss(options.loss), x, y, options, reporter, partition=partition
    )
    seconds = time.monotonic() - started
    provenance = provenance_of(target, options, x.shape[0], seconds, result.params, partition)
    curve = EscapeCurve.from_escape(result, provenance)
    name = name or target.stem
    if partition.is_writer:
        name = save(out, target, curve, name)
    return name, curve


def save(out: str | Path, target, curve: EscapeCurve, base: str) -> str:
    """Write ``curve`` to ``escape/<name>`` of ``out``; returns the name used."""

    def write(f, name: str) -> None:
        curve.write(store.replace_group(f, f"escape/{name}"))

    return save_result(out, "escape", base, [target.sha256], write)
