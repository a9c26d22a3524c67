"""Spectral density by stochastic Lanczos quadrature (SLQ).

Ghorbani, Krishnan & Xiao, "An Investigation into Neural Net Optimization via Hessian
Eigenvalue Density", ICML 2019 (after Lin, Saad & Yang, SIAM Review 2016). For a unit
Rademacher vector ``v = z / sqrt(n)``, ``m`` Lanczos steps from ``v`` give a Gauss rule
``(theta_i, tau_i)`` (nodes: eigenvalues of ``T_m``; weights: squared first components of
its eigenvectors) with

    v^T f(H) v = sum_i tau_i f(theta_i)     exactly for polynomials f of degree < 2m,

and ``E[v^T f(H) v] = tr f(H) / n``. Averaging ``runs`` such rules and replacing each node by
a Gaussian of width ``sigma`` gives a smooth density ``phi(t)`` that integrates to one and
whose first two moments are the quadrature's (``tr H / n`` and ``tr H^2 / n`` in expectation;
the second plus ``sigma^2`` from the smoothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from landscape.curvature.lanczos import (
    LinearOperator,
    gauss_quadrature,
    lanczos_tridiagonal,
    lanczos_tridiagonal_lockstep,
)
from landscape.curvature.vectors import vector_space
from landscape.progress import ProgressFn, report


@dataclass
class SpectralDensity:
    """``values`` on ``grid`` (integrates to 1); ``nodes``/``weights`` are (runs, steps),
    padded with NaN nodes and zero weights where a run ended early (invariant subspace);
    ``lockstep``: whether the runs advanced together (:func:`slq_density`)."""

    grid: np.ndarray
    values: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    hvp_count: int
    lockstep: bool = False

    def moment(self, power: int) -> float:
        """Quadrature estimate of ``tr(H^power) / n`` (mean over runs, no smoothing)."""
        mask = ~np.isnan(self.nodes)
        per_run = np.where(mask, self.weights * np.where(mask, self.nodes, 0.0) ** power, 0.0)
        return float(per_run.sum(axis=1).mean())


def smoothed_density(
    nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float
) -> np.ndarray:
    """Mean over runs of ``sum_i tau_i N(t; theta_i, sigma^2)`` evaluated on ``grid``."""
    mask = ~np.isnan(nodes)
    theta, tau = nodes[mask], weights[mask]
    runs = nodes.shape[0]
    values = np.zeros_like(grid, dtype=np.float64)
    norm = 1.0 / (sigma * math.sqrt(2 * math.pi) * runs)
    for start in range(0, theta.size, 256):  # bounded memory: grid x 256 at a time
        t, w = theta[start : start + 256], tau[start : start + 256]
        values += norm * (w * np.exp(-0.5 * ((grid[:, None] - t) / sigma) ** 2)).sum(axis=1)
    return values


def slq_density(
    op: LinearOperator,
    *,
    runs: int = 3,
    steps: int = 80,
    grid_points: int = 1001,
    sigma: float | None = None,
    seed: int = 0,
    lockstep: bool = False,
    progress: ProgressFn | None = None,
    max_basis: int | None = None,
) -> SpectralDensity:
    """``runs`` independent SLQ runs of ``steps`` Lanczos steps each (``progress``: one report
    per product, products so far of ``runs * steps``, and which run).

    ``lockstep=True`` advances the runs together, each step one batched product of the
    ``runs`` vectors (:func:`~landscape.curvature.lanczos.lanczos_tridiagonal_lockstep`): the
    same start vectors and density as one run after the other (the default) up to rounding, at
    the memory of all the runs' bases at once. It is not the default because it did not pay on
    CPU: per product 1.15x (digits ``cnn-bn``) and 1.05x (ResNet-20) of one run at a time
    (``benchmarks/bench_batched_products.py --only slq``); on a GPU, measure first.

    ``max_basis`` bounds each run's stored basis to that many vectors (local
    reorthogonalisation; see :func:`~landscape.curvature.lanczos.lanczos_tridiagonal` for what
    it costs the nodes); not with ``lockstep``.

    ``sigma`` defaults to 1% of the span of all nodes; the grid covers the nodes with
    ``6 sigma`` to spare on both sides, so the discretised density integrates to one.
    """
    if runs < 1 or steps < 1 or grid_points < 2:
        raise ValueError("runs and steps must be >= 1, grid_points >= 2")
    if lockstep and max_basis is not None:
        raise ValueError("max_basis bounds one run's basis; it does not apply to lockstep runs")
    dim = int(op.dim)
    steps = min(steps, dim)
    probes = vector_space(op).stream(seed)
    nodes = np.full((runs, steps), np.nan)
    weights = np.zeros((runs, steps))
    if lockstep:
        starts = torch.stack([probes.rademacher() for _ in range(runs)])
        done = 0

        def on_product(run: int, j: int) -> None:
            nonlocal done
            done += 1
            report(progress, done=done, total=runs * steps, note=f"run {run + 1}/{runs}")

        recurrences = lanczos_tridiagonal_lockstep(
            op, starts, steps, on_product if progress else None
        )
    else:
        recurrences, hvps = [], 0
        for run in range(runs):

            def on_step(j: int, run: int = run, before: int = hvps) -> None:
                report(progress, done=before + j, total=runs * steps, note=f"run {run + 1}/{runs}")

            recurrences.append(
                lanczos_tridiagonal(
                    op, probes.rademacher(), steps, on_step if progress else None, max_basis
                )
            )
            hvps += len(recurrences[-1][0])
    hvps = 0
    for run, (alphas, betas) in enumerate(recurrences):
        hvps += len(alphas)
        theta, tau = gauss_quadrature(alphas, betas)
        nodes[run, : len(theta)] = theta
        weights[run, : len(tau)] = tau
    lo, hi = float(np.nanmin(nodes)), float(np.nanmax(nodes))
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    sigma = float(sigma) if sigma is not None else 0.01 * span
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, not {sigma}")
    grid = np.linspace(lo - 6 * sigma, hi + 6 * sigma, grid_points)
    values = smoothed_density(nodes, weights, grid, sigma)
    return SpectralDensity(grid, values, nodes, weights, sigma, hvps, lockstep=bool(lockstep))
