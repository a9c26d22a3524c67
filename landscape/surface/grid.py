"""Evaluation of loss and accuracy at many weight vectors: the one loop over points.

A point is anything ``write_point(i)`` can put into the model (a grid node
``theta0 + x_i d1 + y_j d2``, an interpolation point, a real checkpoint). Results go into
NaN-initialised arrays with a ``done`` mask; points already done are skipped, so a run
that was killed resumes where it stopped, and ``on_save`` is called every few seconds so
the caller can persist them. The evaluation data are tensors already on the device; losses
are averaged exactly over examples (:func:`landscape.evaluate.evaluate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from landscape.bn import analysis_mode
from landscape.evaluate import evaluate
from landscape.losses import LossFn
from landscape.progress import ProgressFn, report
from landscape.surface.flat import FlatParameters, preserved_state, state_tensors
from landscape.surface.recalibrate import recalibrate_batchnorm

BN_MODES = ("eval", "train", "recalibrate")

def metric_names(splits: Sequence[str]) -> list[str]:
    return [f"{split}_{metric}" for split in splits for metric in ("loss", "acc")]


class Measure:
    """``measure(model) -> {'<split>_loss': ..., '<split>_acc': ...}`` for the model as it is.

    ``bn_mode``: ``eval`` uses the running statistics in the model, ``train`` batch statistics
    (running statistics left untouched), ``recalibrate`` first recomputes the running statistics
    from ``bn_inputs`` (fixed training examples) and then evaluates in ``eval`` mode.
    """

    def __init__(
        self,
        loss_fn: LossFn,
        splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        *,
        batch_size: int = 1000,
        bn_mode: str = "eval",
        bn_inputs: torch.Tensor | None = None,
    ) -> None:
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, not {bn_mode!r}")
        if bn_mode == "recalibrate" and bn_inputs is None:
            raise ValueError("bn_mode='recalibrate' needs bn_inputs (training examples)")
        self.loss_fn, self.splits, self.batch_size = loss_fn, dict(splits), batch_size
        self.bn_mode, self.bn_inputs = bn_mode, bn_inputs
        self.names = metric_names(self.splits)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        if self.bn_mode == "recalibrate":
            recalibrate_batchnorm(model, self.bn_inputs, self.batch_size)
        out = {}
        mode = "train" if self.bn_mode == "train" else "eval"
        with torch.inference_mode(), analysis_mode(model, mode):
            for split, (inputs, targets) in self.splits.items():
                loss, acc = evaluate(model, inputs, targets, self.loss_fn, batch_size=self.batch_size)
                out[f"{split}_loss"], out[f"{split}_acc"] = loss, acc
        return out


def evaluate_points(
    write_point: Callable[[int], None],
    measure: Callable[[], dict[str, float]],
    results: Mapping[str, np.ndarray],
    done: np.ndarray,
    *,
    on_save: Callable[[], None] | None = None,
    save_every: float = 5.0,
    progress: ProgressFn | None = None,
) -> int:
    """Evaluate every point ``i`` (flat index into ``done``) that is not done yet.

    ``results[name]`` and ``done`` are filled in place (their flattened views); ``on_save``
    runs every ``save_every`` seconds and once at the end, also after an interruption.
    ``progress`` sees points done (resumed ones included) of all, and the first metric's
    value at the last point. Returns the number of points computed here.
    """
    flat_done = done.reshape(-1)
    flat_results = {k: v.reshape(-1) for k, v in results.items()}
    for arr, src in [(flat_done, done), *((flat_results[k], results[k]) for k in results)]:
        if not np.shares_memory(arr, src):
            raise ValueError("results and done must be C-contiguous arrays")
    todo = np.flatnonzero(~flat_done)
    already = flat_done.size - todo.size
    last_save = time.monotonic()
    computed = 0
    try:
        for i in todo:
            write_point(int(i))
            values = measure()
            for name, value in values.items():
                flat_results[name][i] = value
            flat_done[i] = True
            computed += 1
            first = next(iter(values), None)
            report(progress, done=already + computed, total=flat_done.size,
                   estimate=None if first is None else float(values[first]), name=first or "")
            if on_save is not None and time.monotonic() - last_save >= save_every:
                on_save()
                last_save = time.monotonic()
    finally:
        if on_save is not None and computed:
            on_save()
    return computed


@dataclass
class SurfaceResult:
    """Metrics on a 1-D or 2-D grid, ``'ij'`` ordered: ``metrics[name][i, j]`` is at ``(x[i], y[j])``."""

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


class PlaneWriter:
    """Writes ``theta0 + sum_k c_k d_k`` into the model through one reusable flat buffer."""

    def __init__(self, model: nn.Module, directions: Sequence[Mapping[str, torch.Tensor]]) -> None:
        self.flat = FlatParameters(model)
        self.origin = self.flat.get()
        self.directions = [self.flat.from_dict(d, what="direction") for d in directions]
        self.buffer = self.flat.empty()

    @torch.no_grad()
    def write(self, coefficients: Sequence[float]) -> None:
        self.buffer.copy_(self.origin)
        for d, c in zip(self.directions, coefficients):
            if c != 0:  # keeps the centre bit-exact even if a direction holds inf/NaN
                self.buffer.add_(d, alpha=float(c))
        self.flat.set(self.buffer)


def evaluate_surface(
    model: nn.Module,
    directions: Sequence[Mapping[str, torch.Tensor]],
    measure: Measure,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    result: SurfaceResult | None = None,
    on_save: Callable[[SurfaceResult], None] | None = None,
    save_every: float = 5.0,
    progress: ProgressFn | None = None,
) -> SurfaceResult:
    """Loss/accuracy at ``theta0 + x_i d_x (+ y_j d_y)`` for every grid node (Li et al. 2018).

    ``theta0`` is the model's current weights; one direction per axis, matched by parameter
    name. Pass a partly filled ``result`` to resume. The model is restored afterwards.
    """
    if (y is None) != (len(directions) == 1):
        raise ValueError("give one direction for a 1-D slice (y=None) and two for a 2-D surface")
    if result is None:
        result = SurfaceResult.empty(x, y, measure.names)
    start = time.monotonic()
    seconds0 = result.seconds
    with preserved_state(model):
        writer = PlaneWriter(model, directions)
        shape = result.shape

        def write_point(i: int) -> None:
            idx = np.unravel_index(i, shape)
            writer.write([result.x[idx[0]]] if y is None else [result.x[idx[0]], result.y[idx[1]]])

        def save() -> None:
            result.seconds = seconds0 + time.monotonic() - start
            if on_save is not None:
                on_save(result)

        evaluate_points(write_point, lambda: measure(model), result.metrics, result.done, on_save=save,
                        save_every=save_every, progress=progress)
    result.seconds = seconds0 + time.monotonic() - start
    return result


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
    measure: Measure,
    *,
    metrics: dict[str, np.ndarray],
    done: np.ndarray,
    on_save: Callable[[], None] | None = None,
    progress: ProgressFn | None = None,
) -> None:
    """Metrics of each full state (real checkpoints: parameters and buffers) into ``metrics``."""
    with preserved_state(model):
        evaluate_points(lambda i: load_state(model, states[i]), lambda: measure(model), metrics, done,
                        on_save=on_save, progress=progress)
