"""Several grid points per forward pass: ``k`` weight vectors evaluated in one batched call.

A grid point of a small model leaves most of a GPU (or the vector units of a CPU core) idle,
and per-call overhead dominates its time. Stacking ``k`` perturbed copies of the weights and
mapping the model over them (``torch.func.functional_call`` under ``torch.func.vmap``, the same
inputs for every copy) turns ``k`` small passes into one wide one. It pays only sometimes (on a
2-core CPU a ResNet-20 is slower this way: grouped convolutions), so :func:`choose_points`
measures it against one point per pass and keeps it only where it is faster.

BatchNorm must use stored running statistics (``bn_mode="eval"``): batch statistics or a
recalibration per point are state that a stacked call cannot share.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call, vmap

from landscape.batching import (
    BatchChoice,
    autocast_context,
    cache_key,
    candidate_sizes,
    entry_of,
    forward_batch_size,
    probe,
    read_cache,
    write_cache,
)
from landscape.bn import analysis_mode
from landscape.losses import LossFn
from landscape.surface.flat import FlatParameters

log = logging.getLogger("landscape.batching")

FASTER = 0.9  # k points per pass are kept only if at least 10% faster per point
GIVE_UP = 1.5  # a first stacked call this much slower per point ends the measurement of that k
POINTS = (4, 16, 64)  # tried in this order while each is faster than the last


class StackedEvaluator:
    """Mean loss and accuracy over every split for ``k`` flat weight vectors at once.

    The arithmetic matches :func:`landscape.evaluate.evaluate` per point: batch means
    weighted by batch size and summed in float64, on the device, read back once per call.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        batch_size: int,
        *,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.model, self.loss_fn, self.splits = model, loss_fn, dict(splits)
        self.batch_size, self.autocast = batch_size, autocast
        self.flat = FlatParameters(model)
        param_names = set(self.flat.names)
        self.buffers = {n: b for n, b in model.named_buffers() if n not in param_names}
        self._batched = vmap(self._one_point, in_dims=(0, None, None))

    def _one_point(self, vector: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        params = {
            n: vector[a:b].view(s)
            for n, a, b, s in zip(
                self.flat.names, self.flat.offsets[:-1], self.flat.offsets[1:], self.flat.shapes
            )
        }
        out = functional_call(self.model, (params, self.buffers), (x,))
        labels = y if y.dtype in (torch.int64, torch.int32) else y.argmax(dim=-1)
        return self.loss_fn(out, y).double(), (out.argmax(dim=-1) == labels).sum()

    def sums(
        self, vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int
    ) -> torch.Tensor:
        """``(k, 2)`` on the device: summed loss (batch mean x batch size) and correct count."""
        total = torch.zeros(vectors.shape[0], 2, dtype=torch.float64, device=vectors.device)
        with (
            torch.inference_mode(),
            analysis_mode(self.model, "eval"),
            autocast_context(x.device, self.autocast),
            warnings.catch_warnings(),
        ):
            # vmap's note that an op runs through a slow fallback: the probe measures that cost
            warnings.filterwarnings(
                "ignore", message="There is a performance drop because we have not yet"
            )
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                loss, correct = self._batched(vectors, xb, yb)
                total[:, 0] += loss.double() * xb.shape[0]
                total[:, 1] += correct.double()
        return total

    def __call__(self, vectors: torch.Tensor) -> list[dict[str, float]]:
        """Metrics of each row of ``vectors`` (``(k, dim)``, in the flat parameter order)."""
        vectors = vectors.to(device=self.flat.device, dtype=self.flat.dtype)
        parts, names = [], []
        for split, (x, y) in self.splits.items():
            parts.append(self.sums(vectors, x, y, self.batch_size) / x.shape[0])
            names.append(split)
        values = torch.cat(parts, dim=1).tolist()  # one host read-back for all k points
        return [
            {
                f"{s}_{m}": row[2 * i + j]
                for i, s in enumerate(names)
                for j, m in enumerate(("loss", "acc"))
            }
            for row in values
        ]


def choose_points(
    evaluator: StackedEvaluator,
    one_point: BatchChoice,
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> BatchChoice:
    """``one_point`` (the measured batch for one point per pass), or ``k`` points per pass
    with its own batch where that is measured at least 10% faster per point."""
    n = inputs.shape[0]
    origin = evaluator.flat.get()
    best, started, timings = one_point, time.perf_counter(), dict(one_point.timings)
    for k in POINTS:
        vectors = origin.expand(k, -1).clone()
        # k copies multiply the activations: batches between b1 / k and b1 examples
        sizes = [
            b
            for b in candidate_sizes(n, largest=one_point.batch_size)
            if b * k >= one_point.batch_size
        ]

        def run(size: int, vectors: torch.Tensor = vectors) -> None:
            evaluator.sums(vectors, inputs[:size], targets[:size], size)

        # A warm-up already 1.5x slower per point than one point per pass is not timed further:
        # where stacking loses (the common case on CPUs) it costs about one call.
        give_up = GIVE_UP * best.seconds * k
        try:
            timed = probe(
                run, n, sizes[-2:] or [one_point.batch_size], device=inputs.device, give_up=give_up
            )
        except (
            RuntimeError,
            torch.OutOfMemoryError,
        ):  # no batching rule, or no memory for k copies
            break
        found = {b: t / k for b, t in timed.items()}
        timings.update({f"{b}x{k}": t for b, t in found.items()})
        size = min(found, key=found.__getitem__)
        if not found[size] < FASTER * best.seconds:
            break
        best = BatchChoice(size, k, found[size], 0.0, False, {})
    probe_seconds = one_point.probe_seconds + time.perf_counter() - started
    return BatchChoice(
        best.batch_size, best.points, best.seconds, probe_seconds, False, timings, one_point.load
    )


def choose_evaluation(
    model: nn.Module,
    loss_fn: LossFn,
    splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    stack: bool = True,
    autocast: torch.dtype | None = None,
    cache: bool = True,
    refresh: bool = False,
) -> BatchChoice:
    """Batch size (and points per pass, with ``stack``) for evaluating many weight vectors of
    ``model`` on ``splits``: measured on the largest split, cached like
    :func:`landscape.batching.choose` (``refresh``: measured again, the cache replaced)."""
    inputs, targets = max(splits.values(), key=lambda xy: xy[0].shape[0])
    one_point = forward_batch_size(
        model, inputs, autocast=autocast, cache=cache, refresh=refresh, announce=not stack
    )
    if not stack:
        return one_point
    key = cache_key(
        "points", model, inputs, {"autocast": str(autocast), "batch": one_point.batch_size}
    )
    if cache and not refresh and (entry := read_cache(key)) is not None:
        choice = BatchChoice.from_cache(entry)
    else:
        evaluator = StackedEvaluator(
            model, loss_fn, {"probe": (inputs, targets)}, one_point.batch_size, autocast=autocast
        )
        choice = choose_points(evaluator, one_point, inputs, targets)
        if cache:
            write_cache(key, entry_of(choice, "points"))
    log.info("evaluation: %s", choice.describe())
    return choice
