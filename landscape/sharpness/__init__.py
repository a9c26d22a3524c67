"""Sharpness measures of a model at its current weights, on in-memory tensors.

Every function takes ``(model, loss_fn, inputs, targets, **parameters)`` and returns a
:class:`SharpnessMeasurement`; the model's weights and BatchNorm statistics are left as found.
:data:`MEASURES` (:mod:`landscape.sharpness.registry`) maps the measure names used by
``landscape sharpness --measure`` to them. The functions are imported on first use, so that
the registry (the command line's choices) is read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from landscape.sharpness.registry import MEASURES, MeasureSpec, dataset_name, register_measure

_FUNCTIONS = {
    "average_case_sharpness": "average_case",
    "fisher_rao_norm": "gradient",
    "gradient_norm": "gradient",
    "hessian_trace": "hessian",
    "top_eigenvalue": "hessian",
    "SharpnessMeasurement": "result",
    "worst_case_sharpness": "worst_case",
    "worst_case_sharpness_radii": "worst_case",
}


def __getattr__(name: str) -> Any:
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"landscape.sharpness.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'landscape.sharpness' has no attribute {name!r}")


def compute_measure(name: str, model, loss_fn, inputs, targets, **options):
    """Run measure ``name`` with the options it accepts (others are ignored). Its dataset
    name is the measure's, with the curvature matrix appended when it is not the Hessian
    (``top_eigenvalue_ggn``, ``trace_fisher_mc``).

    The radius options (``adaptive_rho``, ``linf_rho``, ``adaptive_sigma``), when given,
    replace ``rho`` / ``sigma`` for the measures they belong to (:class:`MeasureSpec`).
    """
    spec = MEASURES[name]
    result = spec.resolve()(model, loss_fn, inputs, targets, **spec.arguments(options))
    result.measure = spec.dataset
    curvature = result.params.get("curvature", "hessian")
    if curvature != "hessian":  # beside the Hessian's value in the file, not in its place
        result.measure += "_" + curvature.replace("-", "_")
    return result


__all__ = [
    "MEASURES",
    "MeasureSpec",
    "SharpnessMeasurement",
    "average_case_sharpness",
    "compute_measure",
    "dataset_name",
    "fisher_rao_norm",
    "gradient_norm",
    "hessian_trace",
    "register_measure",
    "top_eigenvalue",
    "worst_case_sharpness",
    "worst_case_sharpness_radii",
]
