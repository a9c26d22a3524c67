"""Sharpness measures of a model at its current weights, on in-memory tensors.

Every function takes ``(model, loss_fn, inputs, targets, **parameters)`` and returns a
:class:`SharpnessResult`; the model's weights and BatchNorm statistics are left as found.
:data:`MEASURES` maps the measure names used by ``landscape sharpness --measure`` to them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from landscape.sharpness.average_case import average_case_sharpness
from landscape.sharpness.gradient import fisher_rao_norm, gradient_norm
from landscape.sharpness.hessian import hessian_trace, top_eigenvalue
from landscape.sharpness.result import SharpnessResult
from landscape.sharpness.worst_case import worst_case_sharpness, worst_case_sharpness_radii

# name -> (function with its fixed arguments, the keyword parameters it accepts)
MEASURES: dict[str, tuple[Callable[..., SharpnessResult], tuple[str, ...]]] = {
    "worst-case": (
        partial(worst_case_sharpness, adaptive=False, norm="l2"),
        ("rho", "steps", "m", "batch_size", "bn_mode", "seed", "progress", "partition"),
    ),
    "adaptive-worst-case": (
        partial(worst_case_sharpness, adaptive=True, norm="l2"),
        ("rho", "steps", "m", "batch_size", "bn_mode", "seed", "progress", "partition"),
    ),
    "adaptive-worst-case-linf": (
        partial(worst_case_sharpness, adaptive=True, norm="linf"),
        ("rho", "steps", "m", "batch_size", "bn_mode", "seed", "progress", "partition"),
    ),
    "average-case": (
        partial(average_case_sharpness, adaptive=False),
        ("sigma", "draws", "batch_size", "bn_mode", "seed", "progress", "partition"),
    ),
    "adaptive-average-case": (
        partial(average_case_sharpness, adaptive=True),
        ("sigma", "draws", "batch_size", "bn_mode", "seed", "progress", "partition"),
    ),
    "gradient-norm": (gradient_norm, ("batch_size", "bn_mode", "partition")),
    "fisher-rao-norm": (fisher_rao_norm, ("batch_size", "bn_mode", "partition")),
    "top-eigenvalue": (top_eigenvalue, ("tol", "batch_size", "bn_mode", "seed", "progress")),
    "trace": (
        hessian_trace,
        ("rel_stderr", "max_hvps", "batch_size", "bn_mode", "seed", "progress", "partition"),
    ),
}


def dataset_name(measure: str) -> str:
    """The HDF5 dataset name of a measure under ``sharpness/<ckpt-stem>/``."""
    return measure.replace("-", "_")


def compute_measure(name: str, model, loss_fn, inputs, targets, **options) -> SharpnessResult:
    """Run measure ``name`` with the options it accepts (others are ignored).

    The per-measure radius options ``adaptive_rho`` / ``adaptive_sigma`` (if given) replace
    ``rho`` / ``sigma`` for the adaptive measures, whose natural radius is much larger.
    """
    function, accepted = MEASURES[name]
    options = dict(options)
    if name.startswith("adaptive"):
        if options.get("adaptive_rho") is not None:
            options["rho"] = options["adaptive_rho"]
        if options.get("adaptive_sigma") is not None:
            options["sigma"] = options["adaptive_sigma"]
    kwargs = {k: options[k] for k in accepted if options.get(k) is not None}
    result = function(model, loss_fn, inputs, targets, **kwargs)
    result.measure = dataset_name(name)
    return result


__all__ = [
    "MEASURES",
    "SharpnessResult",
    "average_case_sharpness",
    "compute_measure",
    "dataset_name",
    "fisher_rao_norm",
    "gradient_norm",
    "hessian_trace",
    "top_eigenvalue",
    "worst_case_sharpness",
    "worst_case_sharpness_radii",
]
