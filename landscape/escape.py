"""SAM escape dynamics: real SAM steps from a given point, and how fast they leave it.

Zhou et al. (ICLR 2025) observe that SAM started from an SGD minimum first moves away from
it exponentially fast (the minimum is linearly unstable for SAM), then settles in a flatter
minimum nearby. :func:`sam_escape` runs full-batch SAM on a fixed set of examples from the
model's current weights w_0 and records, at every step t, ||w_t - w_0||, the train loss and
accuracy, and every ``eig_every`` steps the top Hessian eigenvalue (NaN elsewhere). It fits
the exponential growth rate of the early phase by least squares on log ||w_t - w_0||.

One SAM step (Foret et al., ICLR 2021), both halves of it:

    g = grad L(w_t)
    e = rho g / ||g||        (or e = rho g with ``unnormalized``: the simplified SAM of the
                              paper's analysis, w <- w - lr H (w + rho H w) on a quadratic)
    v = momentum v + grad L(w_t + e) + weight_decay w_t
    w_{t+1} = w_t - lr v

Near a minimum of a quadratic, unnormalised SAM multiplies the component along an
eigenvector of eigenvalue lambda by 1 - lr lambda - lr rho lambda^2 at every step, so it
escapes along the directions where that factor exceeds 1 in absolute value.

An escape is not a divergence: when the loss becomes non-finite or exceeds
``divergence_factor`` times its starting value (at least ``divergence_factor`` x 0.01, so
that a start at loss ~0 does not count every rise as a blow-up), the run stops there, the
step is stored as ``diverged_at`` (NaN when the run stayed finite) and no growth rate is
fitted (a fit through a blow-up measures the blow-up, not the instability of the minimum).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.bn import analysis_mode
from landscape.losses import LossFn
from landscape.parallel import SINGLE, Partition
from landscape.progress import ProgressFn, report
from landscape.sharpness._batched import (
    global_norm,
    loss_and_accuracy,
    loss_and_grad,
    trainable_parameters,
)

log = logging.getLogger(__name__)

EigenvalueFn = Callable[[nn.Module], float]

# A loss this many times its starting value is a blow-up, not an escape: from a minimum
# with loss ~0.005, SAM that escapes raises it to ~0.01-0.05; a divergence goes to ~10.
DIVERGENCE_FACTOR = 100.0
# The reference is never below this loss: from a start at loss 1e-6 a rise to 1e-3 is no
# divergence (threshold 100 x 0.01 = 1, half the cross-entropy of chance on 10 classes).
DIVERGENCE_MIN_REFERENCE = 0.01


def divergence_limit(start_loss: float, factor: float = DIVERGENCE_FACTOR) -> float:
    """The loss above which a SAM run from a point with ``start_loss`` counts as diverged."""
    return factor * max(start_loss, DIVERGENCE_MIN_REFERENCE)


@dataclass
class EscapeResult:
    """Per-step records (index t = 0..steps, t = 0 being the starting point) and the fit."""

    step: np.ndarray
    distance: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    eigenvalue: np.ndarray
    growth_rate: float  # slope of log ||w_t - w_0|| per step over the fit window
    fit_window: tuple[int, int]  # first and last step of the fit (inclusive); (-1, -1) if none
    params: dict[str, Any] = field(default_factory=dict)
    diverged_at: float = float("nan")  # first step whose loss diverged; NaN if none

    @property
    def diverged(self) -> bool:
        return math.isfinite(self.diverged_at)

    @property
    def growth_factor(self) -> float:
        """exp(growth_rate): the factor by which the distance grows per step."""
        return math.exp(self.growth_rate) if math.isfinite(self.growth_rate) else float("nan")


def fit_growth_rate(
    distance: np.ndarray, window: tuple[int, int] | None = None
) -> tuple[float, tuple[int, int]]:
    """Least-squares slope of log(distance) against step over ``window`` (inclusive).

    Default window: from step 1 to the first step at which the distance reaches half its
    largest value, i.e. the early phase, before the escape saturates. Steps with zero
    distance are left out. Fewer than three usable points give NaN.
    """
    distance = np.asarray(distance, dtype=np.float64)
    if window is None:
        positive = np.flatnonzero(distance > 0)
        if positive.size == 0:
            return float("nan"), (-1, -1)
        peak = np.nanmax(distance)
        stop = int(np.flatnonzero(distance >= 0.5 * peak)[0])
        window = (int(positive[0]), stop)
    start, stop = window
    steps = np.arange(start, min(stop, len(distance) - 1) + 1)
    steps = steps[distance[steps] > 0]  # also drops NaN (after a divergence)
    if steps.size < 3:
        return float("nan"), (int(start), int(stop))
    slope, _ = np.polyfit(steps.astype(np.float64), np.log(distance[steps]), 1)
    return float(slope), (int(start), int(stop))


def sam_escape(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    rho: float,
    lr: float,
    steps: int,
    unnormalized: bool = False,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    eig_every: int = 0,
    eigenvalue_fn: EigenvalueFn | None = None,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    fit_window: tuple[int, int] | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> EscapeResult:
    """Run ``steps`` full-batch SAM steps on (inputs, targets), moving ``model`` in place.

    ``eigenvalue_fn(model) -> float`` computes the top Hessian eigenvalue; when
    ``eig_every > 0`` and none is given, landscape.curvature's Lanczos is used on the same
    examples. BatchNorm running statistics are not updated (``bn_mode`` as in analysis).
    The run stops at the first step whose loss is non-finite or above
    :func:`divergence_limit` of the loss at step 0 (``diverged_at``; ``divergence_factor``
    = inf: only non-finite); then the growth rate is NaN unless ``fit_window`` ends before.
    ``progress`` sees steps done of ``steps``, the distance travelled and the loss.
    With a ``partition`` every full-batch loss and gradient is the all-reduced sum of the
    processes' shares, so every process takes the same steps (the answer of one).
    """
    if steps < 0 or lr <= 0 or rho < 0:
        raise ValueError("steps must be >= 0, lr > 0 and rho >= 0")
    if not divergence_factor > 1:
        raise ValueError("divergence_factor must be > 1")
    if eig_every > 0 and eigenvalue_fn is None:
        eigenvalue_fn = _curvature_eigenvalue(
            loss_fn, inputs, targets, batch_size, bn_mode, partition
        )
    params = trainable_parameters(model)

    def full_batch_gradient() -> tuple[float, float, list[torch.Tensor]]:
        """Loss, accuracy and gradient of all the examples at the model's current weights."""
        return loss_and_grad(model, loss_fn, inputs, targets, params, batch_size, partition)

    start = [p.detach().clone() for p in params]
    velocity = [torch.zeros_like(p) for p in params]
    records = {
        k: np.full(steps + 1, np.nan) for k in ("distance", "train_loss", "train_acc", "eigenvalue")
    }
    diverged_at = math.nan
    with analysis_mode(model, bn_mode):
        for t in range(steps + 1):
            with torch.no_grad():
                records["distance"][t] = global_norm([p - s for p, s in zip(params, start)]).item()
            if t == steps:
                loss, acc = loss_and_accuracy(
                    model, loss_fn, inputs, targets, batch_size, partition
                )
            else:
                loss, acc, grads = full_batch_gradient()
            records["train_loss"][t], records["train_acc"][t] = loss, acc
            report(
                progress,
                done=t,
                total=steps,
                estimate=float(records["distance"][t]),
                name="distance",
                note=f"train loss {loss:.4g}",
            )
            finite = math.isfinite(loss) and math.isfinite(records["distance"][t])
            if t == 0:
                limit = divergence_limit(loss, divergence_factor)
            if not finite or loss > limit:
                # Diverged (lr too large for this sharpness): the rest stays NaN.
                diverged_at = t
                log.warning(
                    "SAM diverged at step %d (loss %.4g -> %s, limit %.4g); "
                    "later steps are NaN and no growth rate is fitted",
                    t,
                    records["train_loss"][0],
                    loss,
                    limit,
                )
                break
            if eig_every > 0 and t % eig_every == 0:
                records["eigenvalue"][t] = eigenvalue_fn(model)
            if t == steps:
                break
            _sam_update(
                params,
                grads,
                velocity,
                full_batch_gradient,
                rho=rho,
                lr=lr,
                unnormalized=unnormalized,
                momentum=momentum,
                weight_decay=weight_decay,
            )
    if math.isfinite(diverged_at) and (fit_window is None or fit_window[1] >= diverged_at):
        growth_rate, window = math.nan, (-1, -1)
    else:
        growth_rate, window = fit_growth_rate(records["distance"], fit_window)
    return EscapeResult(
        step=np.arange(steps + 1),
        growth_rate=growth_rate,
        fit_window=window,
        params={
            "rho": rho,
            "lr": lr,
            "steps": steps,
            "unnormalized": unnormalized,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eig_every": eig_every,
            "bn_mode": bn_mode,
            "examples": inputs.shape[0],
            "divergence_factor": divergence_factor,
        },
        diverged_at=float(diverged_at),
        **records,
    )


def _sam_update(
    params,
    grads,
    velocity,
    full_batch_gradient,
    *,
    rho,
    lr,
    unnormalized,
    momentum,
    weight_decay,
) -> None:
    """Ascent to w + e, gradient there (``full_batch_gradient()``), descent from w (the step
    the released script omits)."""
    if unnormalized:
        scale = rho
    else:
        size = global_norm(grads).item()
        scale = rho / size if size > 0 else 0.0
    here = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.add_(g, alpha=scale)
    _, _, sam_grads = full_batch_gradient()
    with torch.no_grad():
        for p, w, v, sg in zip(params, here, velocity, sam_grads):
            p.copy_(w)  # back to w_t exactly
            if weight_decay:
                sg = sg.add(p, alpha=weight_decay)
            v.mul_(momentum).add_(sg)
            p.sub_(v, alpha=lr)


def _curvature_eigenvalue(
    loss_fn, inputs, targets, batch_size, bn_mode, partition=SINGLE
) -> EigenvalueFn:
    def top(model: nn.Module) -> float:
        from landscape.sharpness.hessian import top_eigenvalue

        return top_eigenvalue(
            model,
            loss_fn,
            inputs,
            targets,
            batch_size=batch_size,
            bn_mode=bn_mode,
            partition=partition,
        ).value

    return top
