"""Top Hessian eigenvalue and trace as sharpness measures, computed by landscape.curvature.

Either measure can be taken of another curvature matrix than the Hessian (``curvature``: a key
of :data:`landscape.curvature.gauss_newton.CURVATURES` -- the generalised Gauss-Newton, the
empirical or the Monte-Carlo Fisher); its params record which. Imported lazily so that the
other measures work even where the curvature engine is not needed; nothing is reimplemented
here.
"""

from __future__ import annotations

import torch
from torch import nn

from landscape.losses import LossFn
from landscape.parallel import SINGLE, Partition
from landscape.progress import ProgressFn
from landscape.sharpness.result import SharpnessMeasurement


def top_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    tol: float = 1e-3,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    seed: int = 0,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
    curvature: str = "hessian",
    fisher_samples: int = 1,
    loss_name: str = "cross-entropy",
) -> SharpnessMeasurement:
    """lambda_max of the Hessian (or the ``curvature`` matrix) of the mean loss (Lanczos,
    landscape.curvature); ``fisher_samples`` and ``loss_name`` (the predictive distribution)
    define ``fisher-mc``, whose labels are seeded by ``seed``."""
    from landscape.curvature import hessian_eigenvalues

    result = hessian_eigenvalues(
        model,
        loss_fn,
        inputs,
        targets,
        k=1,
        tol=tol,
        seed=seed,
        batch_size=batch_size,
        bn_mode=bn_mode,
        progress=progress,
        partition=partition,
        **_curvature_options(curvature, fisher_samples, loss_name, seed),
    )
    return SharpnessMeasurement(
        measure="top_eigenvalue",
        value=float(result.eigenvalues[0]),
        params={
            "tol": tol,
            "bn_mode": bn_mode,
            "seed": seed,
            "examples": inputs.shape[0],
            **_curvature_params(curvature, fisher_samples),
            "residual": float(result.residuals[0]),
            "hvp_count": int(result.hvp_count),
        },
        gradient_evaluations=2.0 * result.hvp_count,
    )


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    rel_stderr: float = 0.02,
    batch_size: int | None = None,
    bn_mode: str = "eval",
    seed: int = 0,
    max_hvps: int = 2000,
    progress: ProgressFn | None = None,
    partition: Partition = SINGLE,
    curvature: str = "hessian",
    fisher_samples: int = 1,
    loss_name: str = "cross-entropy",
) -> SharpnessMeasurement:
    """tr(H) (or the trace of the ``curvature`` matrix) of the mean loss (Hutch++,
    landscape.curvature), with its standard error; other options as :func:`top_eigenvalue`."""
    from landscape.curvature import hessian_trace as curvature_trace

    result = curvature_trace(
        model,
        loss_fn,
        inputs,
        targets,
        rel_stderr=rel_stderr,
        seed=seed,
        max_hvps=max_hvps,
        batch_size=batch_size,
        bn_mode=bn_mode,
        progress=progress,
        partition=partition,
        **_curvature_options(curvature, fisher_samples, loss_name, seed),
    )
    return SharpnessMeasurement(
        measure="trace",
        value=float(result.trace),
        stderr=float(result.stderr),
        params={
            "rel_stderr": rel_stderr,
            "bn_mode": bn_mode,
            "seed": seed,
            "max_hvps": max_hvps,
            **_curvature_params(curvature, fisher_samples),
            "examples": inputs.shape[0],
            "hvp_count": int(result.hvp_count),
        },
        gradient_evaluations=2.0 * result.hvp_count,
    )


def _curvature_options(curvature: str, fisher_samples: int, loss_name: str, seed: int) -> dict:
    """The operator options of landscape.curvature's conveniences for ``curvature``."""
    if curvature == "hessian":
        return {}
    options = {"curvature": curvature}
    if curvature == "fisher-mc":
        options.update(loss_name=loss_name, mc_samples=fisher_samples, mc_seed=seed)
    return options


def _curvature_params(curvature: str, fisher_samples: int) -> dict:
    """What a measure's params record of its matrix."""
    if curvature == "fisher-mc":
        return {"curvature": curvature, "fisher_samples": fisher_samples}
    return {"curvature": curvature}
