"""The interpolation analysis: metrics along ``(1 - alpha) A + alpha B`` (or a polyline through
more checkpoints) with barrier heights, saved periodically into ``interpolation/<name>/`` and
resumed from it.

:func:`compute_interpolation` takes :class:`InterpolationOptions`, the loaded
:class:`~landscape.analysis.setup.Setup` (the checkpoints in path order) and a
:class:`~landscape.parallel.Partition`, and returns the
:class:`~landscape.results.interpolation.Interpolation` it saved. The numbers come from
:func:`landscape.surface.interpolate`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape.analysis.saving import OwnedPoints, PeriodicSaver, read_previous, write_new_group
from landscape.analysis.setup import Setup
from landscape.parallel import SINGLE, Partition
from landscape.progress import Reporter, cli_reporter
from landscape.results import Provenance
from landscape.results.interpolation import Interpolation

log = logging.getLogger("landscape.surface")


@dataclass
class InterpolationOptions:
    """``alphas``: the grid of every segment (0 and 1 are always added); ``bn``: BatchNorm
    statistics at each point, ``recalibrate`` (recomputed from training examples),
    ``interpolate`` (interpolated like the weights) or ``eval`` (left as they are: for models
    without BatchNorm). ``config``: every option that shaped the
    result (recorded; a rerun with the same config resumes)."""

    alphas: np.ndarray
    bn: str = "recalibrate"
    dtype: str = "float32"
    seed: int = 0
    save_every: float = 5.0
    experiment_key: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def new_interpolation(
    options: InterpolationOptions, setup: Setup, metric_names: list[str], partition: Partition
) -> Interpolation:
    """An interpolation with nothing computed yet."""
    from landscape.loading.loader import provenance
    from landscape.surface import path_points

    targets = setup.targets
    segment, alpha = path_points(options.alphas, len(targets))
    recorded = provenance(
        targets[0],
        split=",".join(setup.splits),
        samples=setup.samples,
        bn_mode=options.bn,
        dtype=options.dtype,
        seed=options.seed,
        seconds=0.0,
        config=options.config,
    )
    result = Interpolation(
        provenance=Provenance(**recorded, **partition.provenance()),
        segment=segment,
        segment_alpha=alpha,
        metrics={n: np.full(alpha.shape, np.nan) for n in metric_names},
        done=np.zeros(alpha.shape, dtype=bool),
        checkpoints=[str(t.path) for t in targets],
        checkpoint_sha256s=[t.sha256 for t in targets],
        epochs=[t.epoch for t in targets],
        phases=[t.phase for t in targets],
        experiment_key=options.experiment_key,
    )
    result.refresh_barriers()
    return result


def compute_interpolation(
    options: InterpolationOptions,
    setup: Setup,
    out: Path,
    group_path: str,
    *,
    partition: Partition = SINGLE,
    reporter: Reporter | None = None,
    resume: bool = True,
    label: str | None = None,
) -> Interpolation:
    """Compute (or finish) ``group_path`` of ``out``; see the module docstring. ``resume=False``
    starts afresh whatever the file holds; ``label`` names the progress phase."""
    from landscape.surface import InterpolationResult, interpolate, path_points

    reporter = reporter or cli_reporter()
    targets = setup.targets
    measure = setup.measure("recalibrate" if options.bn == "recalibrate" else "eval")
    previous = None
    segment, alpha = path_points(options.alphas, len(targets))
    if resume:  # the writer reads, every process starts from the same copy
        previous = partition.broadcast(
            read_previous(
                out, group_path, targets[0].sha256, options.config, Interpolation.read, alpha.shape
            )
            if partition.is_writer
            else None
        )
    if previous is not None:
        result = previous
        log.info(
            "resuming %s:%s: %d of %d points done",
            out,
            group_path,
            int(result.done.sum()),
            result.done.size,
        )
    else:
        result = new_interpolation(options, setup, measure.names, partition)
        write_new_group(out, group_path, result, partition)

    share = OwnedPoints(result.metrics, result.done)  # the engine deals the points to processes
    seconds0, started = result.provenance.seconds or 0.0, time.monotonic()

    def before_save() -> None:
        share.sync()
        result.provenance.seconds = seconds0 + time.monotonic() - started
        result.refresh_barriers()

    saver = PeriodicSaver(
        out,
        options.save_every,
        group_path,
        lambda: int(result.done.sum()),
        result.done.size,
        partition=partition,
        before_save=before_save,
    )
    if previous is not None:
        saver.claim()

    def write(f) -> None:
        result.write_values(f[group_path])

    path = InterpolationResult(result.segment, result.segment_alpha, result.metrics, share.view)
    try:
        with reporter.phase(
            label or f"interpolation {len(targets)} checkpoints",
            result.done.size,
            unit="points",
            initial=int(result.done.sum()),
        ) as phase:
            interpolate(
                targets[0].model,
                [dict(t.model.state_dict()) for t in targets],
                measure,
                options.alphas,
                bn="interpolate" if options.bn == "interpolate" else "recompute",
                result=path,
                on_save=lambda _: saver.save(write),
                save_every=options.save_every,
                progress=phase,
                partition=partition,
            )
    finally:
        share.sync()  # every process ends with every value (the engines gathered them)
        saver.finish(write)  # also after Ctrl-C: keep what is done
    return result
