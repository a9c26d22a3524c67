"""Average-case sharpness: E_delta[L(w + delta)] - L(w) for Gaussian delta.

delta ~ N(0, sigma^2 I) (isotropic) or N(0, sigma^2 diag(|w|^2)) (adaptive, elementwise
scaled by |w|; Andriushchenko et al., ICML 2023, Sec. 3; the "Bayesian" flatness of
Keskar et al. 2017 / Jiang et al. 2020). At a minimum of a quadratic 1/2 w^T H w the
isotropic value is exactly sigma^2 tr(H) / 2.

The expectation is estimated by Monte Carlo over ``draws`` noise samples. With
``antithetic`` (the default) each draw evaluates delta and -delta and averages them:
the first-order term, which dominates the variance away from a minimum, cancels
exactly, and the estimate stays unbiased. ``stderr`` is the standard error over draws.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from landscape.bn import analysis_mode
from landscape.losses import LossFn
from landscape.parallel import SINGLE, Partition
from landscape.progress import ProgressFn, report
from landscape.sharpness._batched import loss_and_accuracy, perturbable
from landscape.sharpness.result import SharpnessMeasurement


def average_case_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    sigma: float,
    draws: int = 100,
    adaptive: bool = False,
    antithetic: bool = True,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    seed: int = 0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
) -> SharpnessMeasurement:
    """Monte-Carlo estimate of E[L(w + delta)] - L(w), with its standard error (``progress``:
    draws done of ``draws``, the running mean and its standard error)."""
    if sigma < 0 or draws < 1:
        raise ValueError("sigma must be >= 0 and draws >= 1")
    generator = torch.Generator().manual_seed(seed)
    gaps = []
    with analysis_mode(model, bn_mode), perturbable(model) as origin:
        base, _ = loss_and_accuracy(
            model, loss_fn, inputs, targets, batch_size, partition=partition
        )
        for _ in range(draws):
            noise = [
                torch.randn(w.shape, generator=generator, dtype=torch.float64).to(w) * sigma
                for w in origin.values
            ]
            if adaptive:
                noise = [e * w.abs() for e, w in zip(noise, origin.values)]
            origin.move_to(noise)
            plus, _ = loss_and_accuracy(
                model, loss_fn, inputs, targets, batch_size, partition=partition
            )
            if antithetic:
                origin.move_to([-e for e in noise])
                minus, _ = loss_and_accuracy(
                    model, loss_fn, inputs, targets, batch_size, partition=partition
                )
                gaps.append(0.5 * (plus + minus) - base)
            else:
                gaps.append(plus - base)
            if progress is not None:
                mean = sum(gaps) / len(gaps)
                spread = (
                    float(torch.tensor(gaps).std()) / math.sqrt(len(gaps))
                    if len(gaps) > 1
                    else None
                )
                report(
                    progress,
                    done=len(gaps),
                    total=draws,
                    estimate=mean,
                    name="sharpness",
                    error=spread,
                    error_name="stderr",
                )
    values = torch.tensor(gaps, dtype=torch.float64)
    stderr = values.std(unbiased=True).item() / math.sqrt(draws) if draws > 1 else float("nan")
    return SharpnessMeasurement(
        measure="adaptive_average_case" if adaptive else "average_case",
        value=values.mean().item(),
        stderr=stderr,
        loss=base,
        params={
            "sigma": sigma,
            "draws": draws,
            "adaptive": adaptive,
            "antithetic": antithetic,
            "bn_mode": bn_mode,
            "seed": seed,
            "examples": inputs.shape[0],
        },
        gradient_evaluations=(1 + draws * (2 if antithetic else 1)) / 3,
    )
