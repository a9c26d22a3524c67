"""Curvature of a model's loss: Hessian-vector products, extreme eigenvalues, trace, density.

Building blocks (work on any object with ``dim`` and ``matvec``):

* :class:`HessianOperator` -- ``v -> H v`` for the mean loss over fixed examples; the
  generalised Gauss-Newton and Fisher operators of :mod:`landscape.curvature.gauss_newton`
  share its interface (registry ``CURVATURES``; the conveniences take ``curvature="ggn"``,
  ``"fisher"`` or ``"fisher-mc"``).
* :func:`lanczos_eigs` -- top-k / bottom-k eigenpairs with certified residuals.
* :func:`krylov_hutchpp_trace`, :func:`hutchpp_trace`, :func:`hutchinson_trace` -- trace
  with a standard error.
* :func:`slq_density` -- spectral density by stochastic Lanczos quadrature.

Conveniences taking ``(model, loss_fn, inputs, targets)`` (or a DataLoader as ``inputs``):
:func:`hessian_eigenvalues`, :func:`top_eigenvalue`, :func:`hessian_trace`,
:func:`spectral_density`.

Example::

    import torch.nn.functional as F
    from landscape.curvature import hessian_eigenvalues, hessian_trace

    eig = hessian_eigenvalues(model, F.cross_entropy, x, y, k=5, tol=1e-4)
    print(eig.eigenvalues, eig.residuals, eig.hvp_count)
    tr = hessian_trace(model, F.cross_entropy, x, y, rel_stderr=0.01)
    print(f"{tr.trace:.4g} +- {tr.stderr:.2g}")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from landscape.curvature.density import SpectralDensity, slq_density
from landscape.curvature.lanczos import EigResult, lanczos_eigs
from landscape.curvature.operator import HessianOperator, as_batches
from landscape.curvature.trace import (
    TRACE_METHODS,
    TraceResult,
    hutchinson_trace,
    hutchpp_trace,
    krylov_hutchpp_trace,
)
from landscape.progress import ProgressFn

__all__ = [
    "SpectralDensity",
    "EigResult",
    "HessianOperator",
    "TraceResult",
    "hessian_eigenvalues",
    "hessian_trace",
    "hutchinson_trace",
    "hutchpp_trace",
    "krylov_hutchpp_trace",
    "lanczos_eigs",
    "slq_density",
    "spectral_density",
    "top_eigenvalue",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _operator(model, loss_fn, inputs, targets, operator_options: dict[str, Any]) -> HessianOperator:
    from landscape.curvature.gauss_newton import curvature_operator

    x, y, batches = as_batches(inputs, targets)
    curvature = operator_options.pop("curvature", "hessian")
    return curvature_operator(curvature, model, loss_fn, x, y, batches=batches, **operator_options)


def hessian_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor | Iterable,
    targets: torch.Tensor | None = None,
    *,
    k: int = 5,
    which: str = "top",
    tol: float = 1e-4,
    seed: int = 0,
    eigenvectors: bool = False,
    max_hvps: int | None = None,
    stop: str | None = None,
    progress: ProgressFn | None = None,
    **operator_options: Any,
) -> EigResult:
    """Top-k (or ``which="bottom"``) Hessian eigenpairs of the mean loss, to eigenvalue error
    bound ``min(r, r^2/gap) <= tol |lambda|`` (``stop="gap"``, the default without
    eigenvectors) or to relative residual ``tol`` (``stop="residual"``, the default with them).
    ``operator_options`` go to :class:`HessianOperator` (``batch_size``, ``bn_mode``,
    ``engine``, ``weight_decay``, ``memory_budget``, ``parameters``; ``curvature`` picks
    another matrix, e.g. ``"ggn"``); ``progress`` as in
    :mod:`landscape.progress`."""
    with _operator(model, loss_fn, inputs, targets, operator_options) as op:
        return lanczos_eigs(
            op,
            k,
            which=which,
            tol=tol,
            seed=seed,
            eigenvectors=eigenvectors,
            max_hvps=max_hvps,
            stop=stop,
            progress=progress,
        )


def top_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor | Iterable,
    targets: torch.Tensor | None = None,
    **options: Any,
) -> float:
    """The largest Hessian eigenvalue (options as for :func:`hessian_eigenvalues`)."""
    return float(
        hessian_eigenvalues(model, loss_fn, inputs, targets, k=1, **options).eigenvalues[0]
    )


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor | Iterable,
    targets: torch.Tensor | None = None,
    *,
    rel_stderr: float = 0.01,
    method: str = "krylov-hutch++",
    seed: int = 0,
    max_hvps: int = 2000,
    progress: ProgressFn | None = None,
    **operator_options: Any,
) -> TraceResult:
    """``tr H`` to ``rel_stderr``: ``method`` is ``"krylov-hutch++"`` (default: Hutch++ with an
    adaptive Lanczos deflation basis), ``"hutch++"`` (Meyer et al.'s sketch) or
    ``"hutchinson"``."""
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {', '.join(TRACE_METHODS)}, not {method!r}")
    estimator = TRACE_METHODS[method]
    with _operator(model, loss_fn, inputs, targets, operator_options) as op:
        return estimator(op, rel_stderr=rel_stderr, seed=seed, max_hvps=max_hvps, progress=progress)


def spectral_density(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor | Iterable,
    targets: torch.Tensor | None = None,
    *,
    runs: int = 3,
    steps: int = 80,
    sigma: float | None = None,
    grid_points: int = 1001,
    seed: int = 0,
    lockstep: bool = False,
    progress: ProgressFn | None = None,
    **operator_options: Any,
) -> SpectralDensity:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (``lockstep``: the runs
    advanced together, one batched product per step; see :func:`slq_density`)."""
    with _operator(model, loss_fn, inputs, targets, operator_options) as op:
        return slq_density(
            op,
            runs=runs,
            steps=steps,
            sigma=sigma,
            grid_points=grid_points,
            seed=seed,
            lockstep=lockstep,
            progress=progress,
        )
