"""Linear interpolation between checkpoints, ``(1 - alpha) A + alpha B``, and barrier heights.

More than two checkpoints give a polyline: segment ``s`` runs from checkpoint ``s`` to ``s+1``
and the path coordinate is ``t = s + alpha``. The ``alpha`` grid is applied to every segment;
``alpha < 0`` is used only before the first checkpoint and ``alpha > 1`` only after the last;
``alpha = 0`` and ``alpha = 1`` are always evaluated. The weights are formed as
``(1 - alpha) * A + alpha * B`` so that they equal A at ``alpha = 0`` and B at ``alpha = 1``
bit for bit.

Barrier heights, on the points of a segment with ``0 <= alpha <= 1``, for a metric f (loss,
or error = 1 - accuracy):

* Frankle et al., "Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020:
  ``max_alpha f(alpha) - (f(0) + f(1)) / 2``.
* Entezari et al., "The Role of Permutation Invariance in Linear Mode Connectivity of Neural
  Networks", ICLR 2022: ``max_alpha [f(alpha) - ((1 - alpha) f(0) + alpha f(1))]``.

BatchNorm: ``recompute`` (default) recomputes running statistics at every point from training
batches (pass a recalibrating :class:`~landscape.surface.grid.PointEvaluator`); ``interpolate``
interpolates the running statistics like the weights (as the paper code of most LMC studies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from landscape.parallel import SINGLE, Partition
from landscape.progress import ProgressFn
from landscape.surface.flat import FlatParameters, preserved_state
from landscape.surface.grid import PointEvaluator, TimedFill

BN_POLICIES = ("recompute", "interpolate")


def path_points(alphas: Sequence[float], n_checkpoints: int) -> tuple[np.ndarray, np.ndarray]:
    """``(segment, alpha)`` arrays of the points of a polyline through ``n_checkpoints``,
    ordered along the path, with every checkpoint (``alpha`` 0 or 1) included exactly once."""
    if n_checkpoints < 2:
        raise ValueError("interpolation needs at least two checkpoints")
    grid = np.asarray(alphas, dtype=np.float64).copy()
    for anchor in (0.0, 1.0):  # linspace lands next to the end points, e.g. at -2.8e-17
        grid[np.abs(grid - anchor) < 1e-9] = anchor
    grid = np.unique(np.concatenate([grid, [0.0, 1.0]]))
    segments, values = [], []
    last = n_checkpoints - 2
    for s in range(last + 1):
        for a in grid:
            if (a < 0 and s != 0) or (a > 1 and s != last):
                continue
            if a == 1 and s != last:  # checkpoint s+1 is alpha = 0 of the next segment
                continue
            segments.append(s)
            values.append(a)
    return np.asarray(segments, dtype=np.int64), np.asarray(values, dtype=np.float64)


def barrier_heights(alphas: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Barrier heights of one segment (see the module docstring); NaN if an end point is missing."""
    alphas, values = np.asarray(alphas, dtype=np.float64), np.asarray(values, dtype=np.float64)
    inside = (alphas >= 0) & (alphas <= 1)
    a, f = alphas[inside], values[inside]
    ends = [f[a == 0], f[a == 1]]
    if any(e.size == 0 or np.isnan(e[0]) for e in ends) or np.isnan(f).any():
        return {"frankle": float("nan"), "entezari": float("nan")}
    f0, f1 = float(ends[0][0]), float(ends[1][0])
    return {
        "frankle": float(f.max() - 0.5 * (f0 + f1)),
        "entezari": float((f - ((1 - a) * f0 + a * f1)).max()),
    }


@dataclass
class InterpolationResult:
    """Metrics along the path; ``t = segment + alpha`` is the coordinate along the polyline."""

    segment: np.ndarray
    alpha: np.ndarray
    metrics: dict[str, np.ndarray]
    done: np.ndarray
    seconds: float = 0.0

    @property
    def t(self) -> np.ndarray:
        return self.segment + self.alpha

    @classmethod
    def empty(
        cls, segment: np.ndarray, alpha: np.ndarray, names: Sequence[str]
    ) -> InterpolationResult:
        n = len(alpha)
        return cls(
            np.asarray(segment),
            np.asarray(alpha, dtype=np.float64),
            {k: np.full(n, np.nan) for k in names},
            np.zeros(n, dtype=bool),
        )

    def segment_barriers(self) -> dict[str, list[float]]:
        """``'<split>_<loss|error>_<frankle|entezari>'`` -> one barrier per segment."""
        out: dict[str, list[float]] = {}
        for name, values in self.metrics.items():
            split, metric = name.rsplit("_", 1)
            label = "loss" if metric == "loss" else "error"
            f = values if metric == "loss" else 1.0 - values
            for s in range(int(self.segment.max()) + 1):
                here = self.segment == s
                alphas, fs = self.alpha[here], f[here]
                if s + 1 <= int(self.segment.max()):  # checkpoint s+1 is stored on segment s+1
                    nxt = (self.segment == s + 1) & (self.alpha == 0)
                    alphas = np.concatenate([alphas, [1.0]])
                    fs = np.concatenate([fs, f[nxt][:1] if nxt.any() else [np.nan]])
                for key, value in barrier_heights(alphas, fs).items():
                    out.setdefault(f"{split}_{label}_{key}", []).append(value)
        return out

    def barriers(self) -> dict[str, float]:
        """The largest barrier over the segments (for two checkpoints: the barrier)."""
        return {
            k: float(np.max(v)) if not np.isnan(v).any() else float("nan")
            for k, v in self.segment_barriers().items()
        }


class PathWriter:
    """Writes ``(1 - alpha) * states[s] + alpha * states[s + 1]`` into the model in place."""

    def __init__(
        self,
        model: nn.Module,
        states: Sequence[Mapping[str, torch.Tensor]],
        *,
        interpolate_buffers: bool = False,
    ) -> None:
        names = [n for n, _ in model.named_parameters()]
        if interpolate_buffers:
            names += [n for n, b in model.named_buffers() if b.is_floating_point()]
        self.flat = FlatParameters(model, names)
        self.vectors = [
            self.flat.from_dict(s, what=f"checkpoint {i}") for i, s in enumerate(states)
        ]
        self.buffer = self.flat.empty()

    @torch.no_grad()
    def write(self, segment: int, alpha: float) -> None:
        torch.mul(self.vectors[segment], 1.0 - alpha, out=self.buffer)
        self.buffer.add_(self.vectors[segment + 1], alpha=alpha)
        self.flat.set(self.buffer)


def interpolate(
    model: nn.Module,
    states: Sequence[Mapping[str, torch.Tensor]],
    measure: PointEvaluator,
    alphas: Sequence[float],
    *,
    bn: str = "recompute",
    result: InterpolationResult | None = None,
    on_save: Callable[[InterpolationResult], None] | None = None,
    save_every: float = 5.0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> InterpolationResult:
    """Metrics along the polyline through ``states`` (``{name: tensor}``, matched by name).

    ``bn='recompute'`` expects ``measure`` to recalibrate BatchNorm at each point;
    ``bn='interpolate'`` interpolates the running statistics too. Restores the model afterwards.
    With a ``partition`` the points are dealt to its processes (``on_save``: the writer only).
    """
    if bn not in BN_POLICIES:
        raise ValueError(f"bn must be one of {BN_POLICIES}, not {bn!r}")
    if result is None:
        segment, alpha = path_points(alphas, len(states))
        result = InterpolationResult.empty(segment, alpha, measure.names)
    fill = TimedFill(result, on_save, save_every, progress, partition)
    with preserved_state(model):
        writer = PathWriter(model, states, interpolate_buffers=bn == "interpolate")
        fill.points(
            lambda i: writer.write(int(result.segment[i]), float(result.alpha[i])),
            lambda: measure(model),
        )
    return fill.finish()
