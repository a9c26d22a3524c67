"""Sharpness measures of checkpoints: what ``landscape sharpness`` computes, and how.

:func:`measure_sharpness` runs the measures of :class:`SharpnessOptions` on one model (through
the registry, :mod:`landscape.sharpness.registry`; worst-case sharpness at several radii in one
pass over the examples); :func:`analyse_sharpness` does so for every checkpoint and saves each
one's :class:`~landscape.results.sharpness.SharpnessResult` when it is done, keeping the
measures an earlier run computed on the same checkpoint and examples.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from landscape.analysis.provenance import provenance_of
from landscape.analysis.saving import save_result
from landscape.parallel import SINGLE, Partition
from landscape.progress import Reporter
from landscape.results.sharpness import MeasureValue, SharpnessResult, write_merged
from landscape.sharpness.options import SharpnessOptions

log = logging.getLogger("landscape.sharpness")


def measured_batch(measure: str, model, loss_fn, x, y) -> int:
    """The fastest batch for the work ``measure`` repeats (its registry entry: forwards,
    Hessian-vector products or gradients), measured and cached (:mod:`landscape.batching`)."""
    from landscape import batching
    from landscape.sharpness import MEASURES

    work = MEASURES[measure].work
    if work == "forward":
        return batching.forward_batch_size(model, x).batch_size
    if work == "hvp":
        return batching.product_batch_size(model, loss_fn, x, y).batch_size
    return batching.gradient_batch_size(model, loss_fn, x, y).batch_size


def measure_sharpness(
    model: torch.nn.Module,
    loss_fn,
    x: torch.Tensor,
    y: torch.Tensor,
    options: SharpnessOptions,
    reporter: Reporter | None = None,
    prefix: str = "",
    partition: Partition = SINGLE,
) -> list[tuple[object, float]]:
    """Every measure of ``options`` on one model, each one phase of ``reporter``: the
    :class:`landscape.sharpness.SharpnessMeasurement` of each with its seconds, in order. With a
    ``partition`` of several processes the sums are data-parallel and the writer's measured
    batch size is everyone's."""
    from landscape.sharpness import MEASURES, compute_measure, worst_case_sharpness_radii

    reporter = reporter or Reporter(enabled=False)
    radii = list(dict.fromkeys(options.radii))
    computed = []
    for name in options.measures:
        started = time.monotonic()
        opts = {
            **options.measure_options(),
            "loss_name": options.loss,  # fisher-mc samples the loss's predictive distribution
        }
        if opts["batch_size"] == "auto":  # measured by the writer, taken by every process
            batch = measured_batch(name, model, loss_fn, x, y) if partition.is_writer else None
            opts["batch_size"] = partition.broadcast(batch)
        with reporter.phase(f"{prefix}{name}", unit=MEASURES[name].unit) as phase:
            if name == "worst-case" and len(radii) > 1:
                found = worst_case_sharpness_radii(
                    model, loss_fn, x, y, radii=radii, steps=opts["steps"], m=opts["m"],
                    batch_size=opts["batch_size"], bn_mode=opts["bn_mode"], seed=opts["seed"],
                    progress=phase, partition=partition,
                )  # fmt: skip
                for result in found:
                    result.measure = f"worst_case_rho{result.params['rho']:g}"
            else:
                found = [
                    compute_measure(
                        name, model, loss_fn, x, y, **opts, progress=phase, partition=partition
                    )
                ]
        seconds = (time.monotonic() - started) / len(found)
        computed.extend((result, seconds) for result in found)
    return computed


def analyse_sharpness(
    options: SharpnessOptions,
    targets: list,
    x: torch.Tensor,
    y: torch.Tensor,
    out: str | Path,
    *,
    partition: Partition = SINGLE,
    reporter: Reporter | None = None,
) -> list[tuple[str, SharpnessResult]]:
    """Every checkpoint of ``targets`` (:class:`landscape.loading.loader.LoadedModel`); each
    one's measures are written to ``sharpness/<name>`` of ``out`` when done (by the writer
    process). Returns ``(name, the measures computed now)`` per checkpoint, in order."""
    from landscape.losses import make_loss

    loss_fn = make_loss(options.loss)
    done = []
    for i, target in enumerate(targets):
        started = time.monotonic()
        prefix = f"[{i + 1}/{len(targets)}] {target.stem}: " if len(targets) > 1 else ""
        computed = measure_sharpness(
            target.model, loss_fn, x, y, options, reporter, prefix, partition
        )
        for result, seconds in computed:
            log.info("%s %s = %.6g (%.1f s)", target.stem, result.measure, result.value, seconds)
        seconds = time.monotonic() - started
        provenance = provenance_of(
            target, options, x.shape[0], seconds, _config(options), partition
        )
        result = SharpnessResult(
            provenance, {r.measure: MeasureValue.from_measure(r, s) for r, s in computed}
        )
        name = save(out, target, result) if partition.is_writer else target.stem
        done.append((name, result))
    return done


def _config(options: SharpnessOptions) -> dict:
    """What shaped the measures, for the provenance's ``config``."""
    radii = list(dict.fromkeys(options.radii))
    return {
        **options.measure_options(),
        "rho": radii if len(radii) > 1 else radii[0],
        "measures": list(options.measures),
        "loss": options.loss,
        "dataset": options.dataset,
        "subset_seed": options.subset_seed,
    }


def save(out: str | Path, target, result: SharpnessResult) -> str:
    """Write ``result`` to ``sharpness/<name>`` of ``out`` (merged with the measures there from
    the same checkpoint and examples); returns the name used."""

    def write(f, name: str) -> None:
        write_merged(f, name, result)

    return save_result(out, "sharpness", target.stem, [target.sha256], write, merge=True)
