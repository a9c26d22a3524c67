"""Evaluation of loss and accuracy at many weight vectors: the one loop over points.

A point is anything ``write_point(i)`` can put into the model (a grid node
``theta0 + x_i d1 + y_j d2``, an interpolation point, a real checkpoint). Results go into
NaN-initialised arrays with a ``done`` mask; points already done are skipped, so a run
that was killed resumes where it stopped, and ``on_save`` is called every few seconds so
the caller can persist them. The evaluation data are tensors already on the device; losses
are averaged exactly over examples (:func:`landscape.evaluate.evaluate`).

Over several processes (a :class:`~landscape.parallel.Partition`) the points left to do are
dealt round-robin (``partition.owned``), so that a resumed run, of any world size, deals only
the missing points. Every few seconds of steps every process's new values are gathered to all
of them; ``on_save`` runs on the writer only, which therefore saves every point finished by any
rank up to its last gather (a rank that dies loses at most the points since then).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.batching import autocast_context
from landscape.bn import analysis_mode
from landscape.errors import UserError
from landscape.evaluate import evaluate_sums
from landscape.losses import LossFn
from landscape.parallel import SINGLE, Partition
from landscape.progress import ProgressFn, report
from landscape.surface.flat import FlatParameters, preserved_state, state_tensors
from landscape.surface.recalibrate import recalibrate_batchnorm
from landscape.surface.stacked import StackedEvaluator

BN_MODES = ("eval", "train", "recalibrate")

# Seconds of steps between two gathers of a distributed grid: short against a save interval
# (what a dead rank can lose), long against the jitter of one point (what a meeting costs).
GATHER_SECONDS = 2.0


def metric_names(splits: Sequence[str]) -> list[str]:
    return [f"{split}_{metric}" for split in splits for metric in ("loss", "acc")]


class PointEvaluator:
    """``measure(model) -> {'<split>_loss': ..., '<split>_acc': ...}`` for the model as it is.

    ``bn_mode``: ``eval`` uses the running statistics in the model, ``train`` batch statistics
    (running statistics left untouched), ``recalibrate`` first recomputes the running statistics
    from ``bn_inputs`` (fixed training examples) and then evaluates in ``eval`` mode.

    ``batch_size`` only changes speed (choose it with :mod:`landscape.batching`), except with
    ``bn_mode="train"`` where batches define the statistics; ``bn_batch_size`` (default
    ``batch_size``) is the recalibration batch, which defines the recalibrated statistics.
    ``points_per_pass > 1`` lets :func:`evaluate_surface` evaluate that many grid points in one
    batched call (``bn_mode="eval"`` only, :mod:`landscape.surface.stacked`). ``autocast`` (e.g.
    ``torch.bfloat16``) runs the forward passes under ``torch.autocast``.
    """

    def __init__(
        self,
        loss_fn: LossFn,
        splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        *,
        batch_size: int = 1000,
        bn_mode: str = "eval",
        bn_inputs: torch.Tensor | None = None,
        bn_batch_size: int | None = None,
        points_per_pass: int = 1,
        autocast: torch.dtype | None = None,
    ) -> None:
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, not {bn_mode!r}")
        if bn_mode == "recalibrate" and bn_inputs is None:
            raise ValueError("bn_mode='recalibrate' needs bn_inputs (training examples)")
        if points_per_pass > 1 and bn_mode != "eval":
            raise ValueError(
                "several points per pass need bn_mode='eval' (no per-point BatchNorm state)"
            )
        self.loss_fn, self.splits, self.batch_size = loss_fn, dict(splits), batch_size
        self.bn_mode, self.bn_inputs = bn_mode, bn_inputs
        self.bn_batch_size = bn_batch_size or batch_size
        self.points_per_pass, self.autocast = max(1, int(points_per_pass)), autocast
        self.names = metric_names(self.splits)
        # called with each evaluation's wall-clock seconds (batching.PaceCheck)
        self.after_point: Callable[[float], None] | None = None
        # examples per split, for each of its two metrics (means taken on the host, in float64)
        self._counts = [x.shape[0] for x, _ in self.splits.values() for _ in range(2)]

    def __call__(self, model: nn.Module) -> dict[str, float]:
        started = time.perf_counter()
        if self.bn_mode == "recalibrate":
            recalibrate_batchnorm(model, self.bn_inputs, self.bn_batch_size)
        sums = []
        with (
            torch.inference_mode(),
            self._mode(model),
            autocast_context(self._device(), self.autocast),
        ):
            for inputs, targets in self.splits.values():
                sums.append(evaluate_sums(model, inputs, targets, self.loss_fn, self.batch_size))
        values = (sums[0] if len(sums) == 1 else torch.cat(sums)).tolist()  # one read-back
        if self.after_point is not None:
            self.after_point(time.perf_counter() - started)
        return {name: value / n for name, value, n in zip(self.names, values, self._counts)}

    def _mode(self, model: nn.Module):
        """The BatchNorm mode of the forward passes. A model already in eval mode throughout
        (as :func:`evaluate_surface` puts it for the whole grid) is used as it is: saving and
        restoring every module's flag per point is a measurable share of a 10 ms point."""
        mode = "train" if self.bn_mode == "train" else "eval"
        if mode == "eval" and not any(m.training for m in model.modules()):
            return contextlib.nullcontext()
        return analysis_mode(model, mode)

    def _device(self) -> torch.device:
        return next(iter(self.splits.values()))[0].device


def evaluate_points(
    write_point: Callable[[int], None],
    measure: Callable[[], dict[str, float]],
    results: Mapping[str, np.ndarray],
    done: np.ndarray,
    *,
    on_save: Callable[[], None] | None = None,
    save_every: float = 5.0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> int:
    """Evaluate every point ``i`` (flat index into ``done``) that is not done yet.

    ``results[name]`` and ``done`` are filled in place (their flattened views); ``on_save``
    runs every ``save_every`` seconds and once at the end, also after an interruption.
    ``progress`` sees points done (resumed ones included) of all, and the first metric's
    value at the last point. Returns the number of points computed here (by this process).
    With a ``partition`` of several processes, every one must call this with the same
    ``done``; each evaluates its share and all end with every value (``on_save``: writer only).
    """

    def one(indices: list[int]) -> list[dict[str, float]]:
        write_point(indices[0])
        return [measure()]

    return evaluate_point_groups(
        one,
        results,
        done,
        group=1,
        on_save=on_save,
        save_every=save_every,
        progress=progress,
        partition=partition,
    )


def evaluate_point_groups(
    measure_group: Callable[[list[int]], list[dict[str, float]]],
    results: Mapping[str, np.ndarray],
    done: np.ndarray,
    *,
    group: int,
    on_save: Callable[[], None] | None = None,
    save_every: float = 5.0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> int:
    """:func:`evaluate_points` for ``measure_group(indices)``, which returns the metrics of up to
    ``group`` points at once (in the order given)."""
    flat_done = done.reshape(-1)
    flat_results = {k: v.reshape(-1) for k, v in results.items()}
    for arr, src in [(flat_done, done), *((flat_results[k], results[k]) for k in results)]:
        if not np.shares_memory(arr, src):
            raise ValueError("results and done must be C-contiguous arrays")
    if partition.is_distributed:
        return _evaluate_dealt(
            measure_group, flat_results, flat_done, group, on_save, save_every, progress, partition
        )
    todo = np.flatnonzero(~flat_done)
    already = flat_done.size - todo.size
    last_save = time.monotonic()
    computed = 0
    try:
        for start in range(0, todo.size, group):
            indices = [int(i) for i in todo[start : start + group]]
            for i, values in zip(indices, measure_group(indices)):
                for name, value in values.items():
                    flat_results[name][i] = value
                flat_done[i] = True
                computed += 1
                first = next(iter(values), None)
                report(
                    progress,
                    done=already + computed,
                    total=flat_done.size,
                    estimate=None if first is None else float(values[first]),
                    name=first or "",
                )
            if on_save is not None and time.monotonic() - last_save >= save_every:
                on_save()
                last_save = time.monotonic()
    finally:
        if on_save is not None and computed:
            on_save()
    return computed


def _evaluate_dealt(
    measure_group, flat_results, flat_done, group, on_save, save_every, progress, partition
) -> int:
    """:func:`evaluate_point_groups` over the processes of ``partition``: this one evaluates
    ``partition.owned`` of the points left, in steps of ``group``; the new values of all
    processes are gathered every few steps (one collective; every process takes part in as many
    steps as the busiest one) and the writer saves every ``save_every`` seconds.

    The first step is gathered on its own and tells every process how long a step takes (the
    slowest one's time); from then on the gathers come every :data:`GATHER_SECONDS` (or
    ``save_every``, if shorter) worth of steps. A gather is a meeting point: gathering after
    every step would make each process wait for the slowest one at every point, so that the
    jitter of single points adds up instead of averaging out.
    """
    todo = np.flatnonzero(~flat_done)
    mine = [int(i) for i in partition.owned(todo)]
    counts = partition.gather((int(todo.size), math.ceil(len(mine) / group)))
    if len({left for left, _ in counts}) != 1:
        raise UserError(
            "the processes of this run disagree on the points left to compute "
            f"({', '.join(str(left) for left, _ in counts)}): they must read the same result"
        )
    steps = max(n for _, n in counts)
    already = flat_done.size - todo.size
    last_save = time.monotonic()
    computed = merged = 0
    every, fresh = 1, []
    try:
        for step in range(steps):
            started = time.monotonic()
            indices = mine[step * group : (step + 1) * group]
            fresh += list(zip(indices, measure_group(indices))) if indices else []
            if (step + 1) % every and step + 1 < steps:
                continue
            last = fresh[-1][1] if fresh else {}
            computed += len(fresh)
            shares = partition.gather((time.monotonic() - started, fresh))
            fresh = []
            if step == 0:  # every process sees the same times, so all choose the same interval
                slowest = max(seconds for seconds, _ in shares)
                every = max(1, int(min(GATHER_SECONDS, save_every) / max(slowest, 1e-9)))
            for _, share in shares:
                for i, values in share:
                    for name, value in values.items():
                        flat_results[name][i] = value
                    flat_done[i] = True
                    merged += 1
            first = next(iter(last), None)
            report(
                progress,
                done=already + merged,
                total=flat_done.size,
                estimate=None if first is None else float(last[first]),
                name=first or "",
            )
            due = time.monotonic() - last_save >= save_every
            if on_save is not None and partition.is_writer and due:
                on_save()
                last_save = time.monotonic()
    finally:
        # after an interruption or a failed rank too: the writer keeps what it has gathered
        if on_save is not None and partition.is_writer and merged:
            on_save()
    return computed


class TimedFill:
    """Fills the missing points of a resumable ``result`` (its ``metrics``, ``done`` and
    ``seconds``) and keeps ``result.seconds`` the wall time of every run that worked on it:
    the time of earlier runs plus this one's since the fill was made. ``on_save(result)``
    sees the seconds brought up to date each time."""

    def __init__(
        self,
        result: Any,
        on_save: Callable[[Any], None] | None,
        save_every: float,
        progress: ProgressFn | None,
        partition: Partition,
    ) -> None:
        self.result, self.on_save = result, on_save
        self.save_every, self.progress, self.partition = save_every, progress, partition
        self.start, self.seconds0 = time.monotonic(), result.seconds

    def save(self) -> None:
        self.result.seconds = self.seconds0 + time.monotonic() - self.start
        if self.on_save is not None:
            self.on_save(self.result)

    def points(
        self, write_point: Callable[[int], None], measure: Callable[[], dict[str, float]]
    ) -> None:
        """:func:`evaluate_points` into the result."""
        evaluate_points(
            write_point,
            measure,
            self.result.metrics,
            self.result.done,
            on_save=self.save,
            save_every=self.save_every,
            progress=self.progress,
            partition=self.partition,
        )

    def groups(
        self, measure_group: Callable[[list[int]], list[dict[str, float]]], group: int
    ) -> None:
        """:func:`evaluate_point_groups` into the result."""
        evaluate_point_groups(
            measure_group,
            self.result.metrics,
            self.result.done,
            group=group,
            on_save=self.save,
            save_every=self.save_every,
            progress=self.progress,
            partition=self.partition,
        )

    def finish(self) -> Any:
        """The result, its seconds up to now."""
        self.result.seconds = self.seconds0 + time.monotonic() - self.start
        return self.result


@dataclass
class SurfaceResult:
    """Metrics on a 1-D or 2-D grid, ``'ij'`` ordered: ``metrics[name][i, j]`` is at
    ``(x[i], y[j])``."""

    x: np.ndarray
    y: np.ndarray | None
    metrics: dict[str, np.ndarray]
    done: np.ndarray
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.x), len(self.y))

    @classmethod
    def empty(cls, x: np.ndarray, y: np.ndarray | None, names: Sequence[str]) -> SurfaceResult:
        x = np.asarray(x, dtype=np.float64)
        y = None if y is None else np.asarray(y, dtype=np.float64)
        shape = (len(x),) if y is None else (len(x), len(y))
        return cls(x, y, {n: np.full(shape, np.nan) for n in names}, np.zeros(shape, dtype=bool))


def grid_bytes(shape: Sequence[int], metrics: int) -> int:
    """Bytes a surface on a grid of ``shape`` allocates at least: a float64 array per metric,
    the done flags and the coefficient table of :func:`_grid_coefficients` (the meshgrid's two
    float64 arrays and their stacked copy: four numbers per point)."""
    points = math.prod(int(n) for n in shape)
    return points * (8 * metrics + 1 + 8 * 2 * len(shape))


class PlaneWriter:
    """Writes ``theta0 + sum_k c_k d_k`` into the model through one reusable flat buffer."""

    def __init__(self, model: nn.Module, directions: Sequence[Mapping[str, torch.Tensor]]) -> None:
        self.flat = FlatParameters(model)
        self.origin = self.flat.get()
        self.directions = [self.flat.from_dict(d, what="direction") for d in directions]
        self.buffer = self.flat.empty()

    @torch.no_grad()
    def write(self, coefficients: Sequence[float]) -> None:
        # zero coefficients are skipped: keeps the centre bit-exact even if a direction holds
        # inf/NaN; the first term is added out of place into the buffer (no copy of the centre)
        terms = [(d, float(c)) for d, c in zip(self.directions, coefficients) if c != 0]
        if not terms:
            self.flat.set(self.origin)
            return
        (first, c), rest = terms[0], terms[1:]
        torch.add(self.origin, first, alpha=c, out=self.buffer)
        for d, c in rest:
            self.buffer.add_(d, alpha=c)
        self.flat.set(self.buffer)

    @torch.no_grad()
    def points(self, coefficients: np.ndarray) -> torch.Tensor:
        """``(k, dim)`` weight vectors for ``k`` rows of coefficients, each built exactly as
        :meth:`write` builds one (same additions in the same order, so the same bits)."""
        out = self.origin.expand(len(coefficients), -1).clone()
        for row, cs in zip(out, coefficients):
            for d, c in zip(self.directions, cs):
                if c != 0:
                    row.add_(d, alpha=float(c))
        return out


def evaluate_surface(
    model: nn.Module,
    directions: Sequence[Mapping[str, torch.Tensor]],
    measure: PointEvaluator,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    result: SurfaceResult | None = None,
    on_save: Callable[[SurfaceResult], None] | None = None,
    save_every: float = 5.0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> SurfaceResult:
    """Loss/accuracy at ``theta0 + x_i d_x (+ y_j d_y)`` for every grid node (Li et al. 2018).

    ``theta0`` is the model's current weights; one direction per axis, matched by parameter
    name. Pass a partly filled ``result`` to resume. The model is restored afterwards. With a
    ``partition`` the grid points are dealt to its processes (:func:`evaluate_point_groups`).
    """
    if (y is None) != (len(directions) == 1):
        raise ValueError("give one direction for a 1-D slice (y=None) and two for a 2-D surface")
    if result is None:
        result = SurfaceResult.empty(x, y, measure.names)
    fill = TimedFill(result, on_save, save_every, progress, partition)
    with preserved_state(model):  # restores the train/eval flags too
        writer = PlaneWriter(model, directions)
        shape = result.shape
        if measure.bn_mode != "train":
            model.eval()  # once for the grid, not per point (PointEvaluator._mode)

        def write_point(i: int) -> None:
            idx = np.unravel_index(i, shape)
            writer.write([result.x[idx[0]]] if y is None else [result.x[idx[0]], result.y[idx[1]]])

        if measure.points_per_pass > 1:
            stacked = StackedEvaluator(
                model,
                measure.loss_fn,
                measure.splits,
                measure.batch_size,
                autocast=measure.autocast,
            )
            grid = _grid_coefficients(result, y is not None)

            def measure_group(indices: list[int]) -> list[dict[str, float]]:
                return stacked(writer.points(grid[indices]))

            fill.groups(measure_group, measure.points_per_pass)
        else:
            fill.points(write_point, lambda: measure(model))
    return fill.finish()


def _grid_coefficients(result: SurfaceResult, two_d: bool) -> np.ndarray:
    """``(points, axes)`` coefficients of every grid node in flat ('ij') order."""
    if not two_d:
        return result.x[:, None]
    xx, yy = np.meshgrid(result.x, result.y, indexing="ij")
    return np.stack([xx.reshape(-1), yy.reshape(-1)], axis=1)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy tensors into the model's parameters and buffers by name (names absent from
    ``state`` are left as they are)."""
    live = state_tensors(model)
    with torch.no_grad():
        for name, tensor in state.items():
            if name in live:
                live[name].copy_(tensor)


def evaluate_states(
    model: nn.Module,
    states: Sequence[Mapping[str, torch.Tensor]],
    measure: PointEvaluator,
    *,
    metrics: dict[str, np.ndarray],
    done: np.ndarray,
    on_save: Callable[[], None] | None = None,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> None:
    """Metrics of each full state (real checkpoints: parameters and buffers) into ``metrics``."""
    with preserved_state(model):
        evaluate_points(
            lambda i: load_state(model, states[i]),
            lambda: measure(model),
            metrics,
            done,
            on_save=on_save,
            progress=progress,
            partition=partition,
        )
