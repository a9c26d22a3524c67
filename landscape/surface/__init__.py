"""Loss-surface slices and interpolation between checkpoints.

Numerical code only (a model, a loss and tensors in; arrays out):
:mod:`landscape.analysis.surface` and :mod:`landscape.analysis.interpolation` drive it, save and
resume; :mod:`landscape.results` writes the HDF5 layout of docs/file-format.md. A point's metrics
come from a :class:`PointEvaluator` (not to be confused with the sharpness measures).
"""

from landscape.surface.directions import (
    PCAPlane,
    between_directions,
    hessian_directions,
    normalize_direction,
    pca_directions,
    random_direction,
)
from landscape.surface.flat import FlatParameters, preserved_state
from landscape.surface.grid import (
    PointEvaluator,
    SurfaceResult,
    evaluate_points,
    evaluate_states,
    evaluate_surface,
)
from landscape.surface.interpolate import (
    InterpolationResult,
    barrier_heights,
    interpolate,
    path_points,
)
from landscape.surface.recalibrate import recalibrate_batchnorm

__all__ = [
    "FlatParameters",
    "InterpolationResult",
    "PointEvaluator",
    "PCAPlane",
    "SurfaceResult",
    "barrier_heights",
    "between_directions",
    "evaluate_points",
    "evaluate_states",
    "evaluate_surface",
    "hessian_directions",
    "interpolate",
    "normalize_direction",
    "path_points",
    "pca_directions",
    "preserved_state",
    "random_direction",
    "recalibrate_batchnorm",
]
