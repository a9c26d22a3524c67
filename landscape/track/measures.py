"""One measurement of a model in training: the engines of ``landscape hessian`` and
``landscape sharpness``, called on the tracker's fixed examples.

Tolerances (docs/tracking.md):

* ``lambda1``, ``top-k``: Lanczos (:func:`landscape.analysis.hessian.hessian_of`, the function
  behind ``landscape hessian``) until every Kato-Temple error bound min(r, r^2/gap) is at most
  ``tol`` (default 1e-4, the command's) times |lambda|; started from the previous
  measurement's Ritz vectors (:func:`landscape.curvature.lanczos.warm_start`) when
  ``warm_start``. The bound is stored beside lambda1 (``lambda1_error_bound``).
* ``trace``: Krylov Hutch++ (Meyer et al. 2021) until its standard error is at most
  ``trace_rel_stderr`` (default 0.05) of the trace, within ``trace_max_hvps`` products; the
  standard error is stored (``trace_stderr``).
* ``worst-case``: max over ||d||_2 <= rho of L(w + d) - L(w) by ``worst_case_steps`` APGD steps
  (:func:`landscape.sharpness.worst_case_sharpness`): a lower bound of the maximum, exact for a
  quadratic once the ascent has converged; no certificate.
* ``gradient-norm``, ``loss``: exact sums over the examples (to floating-point rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from landscape.parallel import SINGLE, Partition

MEASURES = ("lambda1", "top-k", "trace", "worst-case", "gradient-norm", "loss")
CURVATURE_MEASURES = ("lambda1", "top-k", "trace")


@dataclass
class TrackSettings:
    """How each measure is computed; see the module docstring for the tolerances."""

    measures: tuple[str, ...] = ("lambda1",)
    k: int = 3  # eigenvalues of "top-k"
    tol: float = 1e-4
    max_hvps: int | None = None
    trace_rel_stderr: float = 0.05
    trace_max_hvps: int = 500
    rho: float = 0.05
    worst_case_steps: int = 20
    bn_mode: str = "eval"
    batch_size: int = 512
    seed: int = 0
    warm_start: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.measures, str):
            self.measures = tuple(m.strip() for m in self.measures.split(",") if m.strip())
        self.measures = tuple(self.measures)
        unknown = [m for m in self.measures if m not in MEASURES]
        if unknown or not self.measures:
            raise ValueError(
                f"unknown measure(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(MEASURES)}"
            )
        if self.bn_mode not in ("eval", "train"):
            raise ValueError(f"bn_mode must be 'eval' or 'train', not {self.bn_mode!r}")
        if not self.tol > 0 or not self.trace_rel_stderr > 0:
            raise ValueError("tol and trace_rel_stderr must be > 0")
        if self.k < 1 or self.batch_size < 1:
            raise ValueError("k and batch_size must be at least 1")

    def attributes(self) -> dict[str, Any]:
        """The settings as the track group's attributes (only those of the measures asked)."""
        found: dict[str, Any] = {
            "requested": ",".join(self.measures),
            "bn_mode": self.bn_mode,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }
        if any(m in CURVATURE_MEASURES for m in self.measures):
            found.update(curvature="hessian", warm_start=self.warm_start)
        if "lambda1" in self.measures or "top-k" in self.measures:
            found.update(tol=self.tol, stop="gap", max_hvps=self.max_hvps or "")
        if "top-k" in self.measures:
            found["k"] = self.k
        if "trace" in self.measures:
            found.update(
                trace_method="krylov-hutch++",
                trace_rel_stderr=self.trace_rel_stderr,
                trace_max_hvps=self.trace_max_hvps,
            )
        if "worst-case" in self.measures:
            found.update(rho=self.rho, worst_case_steps=self.worst_case_steps, norm="l2")
        return found


def measure(
    model: torch.nn.Module,
    loss_fn,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TrackSettings,
    warm: dict | None = None,
    partition: Partition = SINGLE,
) -> tuple[dict[str, Any], dict | None]:
    """The measures of ``settings`` at the model's current weights on ``x, y``; returns the
    row of values (names of :data:`landscape.results.track.SERIES`) and the Ritz vectors for
    the next measurement's warm start. The caller preserves the training state
    (:func:`landscape.track.preserve.training_preserved`)."""
    wanted = set(settings.measures)
    row: dict[str, Any] = {}
    ritz = None
    if wanted & set(CURVATURE_MEASURES):
        row_part, ritz = _curvature(model, loss_fn, x, y, settings, warm, partition)
        row.update(row_part)
    if "worst-case" in wanted:
        from landscape.sharpness import compute_measure

        result = compute_measure(
            "worst-case",
            model,
            loss_fn,
            x,
            y,
            rho=settings.rho,
            steps=settings.worst_case_steps,
            batch_size=settings.batch_size,
            bn_mode=settings.bn_mode,
            seed=settings.seed,
            partition=partition,
        )
        row["worst_case"] = result.value
        row["loss"] = result.loss
    if "gradient-norm" in wanted:
        from landscape.sharpness import compute_measure

        result = compute_measure(
            "gradient-norm",
            model,
            loss_fn,
            x,
            y,
            batch_size=settings.batch_size,
            bn_mode=settings.bn_mode,
            partition=partition,
        )
        row["gradient_norm"] = result.value
        row["loss"] = result.loss
    if "loss" in wanted and "loss" not in row:
        from landscape.bn import analysis_mode
        from landscape.sharpness._batched import loss_and_accuracy

        with analysis_mode(model, settings.bn_mode):
            row["loss"], _ = loss_and_accuracy(model, loss_fn, x, y, settings.batch_size, partition)
    if "loss" not in wanted:
        row.pop("loss", None)
    return row, ritz


def _curvature(model, loss_fn, x, y, settings: TrackSettings, warm, partition):
    """lambda1, the top k and the trace in one operator, as ``landscape hessian`` computes
    them."""
    from landscape.analysis.hessian import HessianOptions, hessian_of

    wanted = set(settings.measures)
    top_k = settings.k if "top-k" in wanted else 1 if "lambda1" in wanted else 0
    options = HessianOptions(
        top_k=top_k,
        tol=settings.tol,
        max_hvps=settings.max_hvps,
        trace="trace" in wanted,
        trace_rel_stderr=settings.trace_rel_stderr,
        trace_max_hvps=settings.trace_max_hvps,
        bn_mode=settings.bn_mode,
        batch_size=settings.batch_size,
        seed=settings.seed,
        warm_start=settings.warm_start,
    )
    result, chosen = hessian_of(
        model, loss_fn, x, y, options, 0.0, None, "", partition, warm if top_k else None
    )
    row: dict[str, Any] = {"hvp_count": result.hvp_count}
    if result.top is not None:
        if "lambda1" in wanted:
            row["lambda1"] = float(result.top.values[0])
            row["lambda1_error_bound"] = float(result.top.error_bounds[0])
        if "top-k" in wanted:
            row["top_k"] = result.top.values.astype(float)
    if result.trace is not None:
        row["trace"] = result.trace.value
        row["trace_stderr"] = result.trace.stderr
    ritz = chosen["ritz"] if top_k and settings.warm_start else None
    return row, ritz
