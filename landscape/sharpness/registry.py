"""The sharpness measures, by name: what ``landscape sharpness --measure`` offers.

Each :class:`MeasureSpec` says which function computes the measure (resolved when it runs, so
that listing the measures -- the CLI's choices -- does not import torch), the keyword
parameters it accepts, which option replaces its radius (the adaptive measures' natural radius
is much larger than the plain ones'), the progress unit and what work it repeats (so that the
batch can be measured for it). A new measure is one :func:`register_measure` call (the registry
mechanism of :mod:`landscape.registry`): the command line, ``all`` and the result file pick it
up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from landscape.registry import register, resolve

ASCENT = ("rho", "steps", "m", "batch_size", "bn_mode", "seed", "progress", "partition")
NOISE = ("sigma", "draws", "batch_size", "bn_mode", "seed", "progress", "partition")
CURVATURE = ("curvature", "fisher_samples", "loss_name")  # the matrix of the curvature measures


@dataclass(frozen=True)
class MeasureSpec:
    """One measure. ``function`` is ``"module:attribute"``, called as ``f(model, loss_fn,
    inputs, targets, **fixed, **accepted options)`` and returning a
    :class:`landscape.sharpness.SharpnessMeasurement`; ``radius`` is ``(parameter, options)``: the
    first of ``options`` given replaces ``parameter``; ``work`` is ``"gradient"``,
    ``"forward"`` or ``"hvp"``."""

    name: str
    function: str
    parameters: tuple[str, ...]
    summary: str
    fixed: dict[str, Any] = field(default_factory=dict)
    radius: tuple[str, tuple[str, ...]] | None = None
    unit: str = "steps"
    work: str = "gradient"

    def resolve(self) -> Callable[..., Any]:
        return partial(resolve(self.function), **self.fixed)

    def arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments this measure takes from ``options`` (None: not given)."""
        options = dict(options)
        if self.radius is not None:
            parameter, overrides = self.radius
            given = [options[o] for o in overrides if options.get(o) is not None]
            if given:
                options[parameter] = given[0]
        return {k: options[k] for k in self.parameters if options.get(k) is not None}

    @property
    def dataset(self) -> str:
        """The HDF5 dataset name under ``sharpness/<name>/``."""
        return dataset_name(self.name)


MEASURES: dict[str, MeasureSpec] = {}


def register_measure(spec: MeasureSpec) -> MeasureSpec:
    """Add ``spec`` to :data:`MEASURES` (``all`` is reserved: every measure)."""
    return register(MEASURES, spec, what="sharpness measure", reserved=("all",))


def dataset_name(measure: str) -> str:
    """The HDF5 dataset name of a measure under ``sharpness/<ckpt-stem>/``."""
    return measure.replace("-", "_")


_WORST = "landscape.sharpness.worst_case:worst_case_sharpness"
_AVERAGE = "landscape.sharpness.average_case:average_case_sharpness"
for _spec in (
    MeasureSpec(
        "worst-case", _WORST, ASCENT, "max_{||d||_2<=rho} L(w+d) - L(w)",
        fixed={"adaptive": False, "norm": "l2"},
    ),
    MeasureSpec(
        "adaptive-worst-case", _WORST, ASCENT, "same with ||d/|w| ||_2 <= rho",
        fixed={"adaptive": True, "norm": "l2"}, radius=("rho", ("adaptive_rho",)),
    ),
    MeasureSpec(
        "adaptive-worst-case-linf", _WORST, ASCENT, "same with ||d/|w| ||_inf <= rho",
        fixed={"adaptive": True, "norm": "linf"}, radius=("rho", ("linf_rho", "adaptive_rho")),
    ),
    MeasureSpec(
        "average-case", _AVERAGE, NOISE, "E L(w+d) - L(w), d ~ N(0, sigma^2 I)",
        fixed={"adaptive": False}, unit="draws", work="forward",
    ),
    MeasureSpec(
        "adaptive-average-case", _AVERAGE, NOISE, "d ~ N(0, sigma^2 diag(w^2))",
        fixed={"adaptive": True}, radius=("sigma", ("adaptive_sigma",)), unit="draws",
        work="forward",
    ),
    MeasureSpec(
        "gradient-norm", "landscape.sharpness.gradient:gradient_norm",
        ("batch_size", "bn_mode", "partition"), "||grad L(w)||_2 over the subset",
    ),
    MeasureSpec(
        "fisher-rao-norm", "landscape.sharpness.gradient:fisher_rao_norm",
        ("batch_size", "bn_mode", "partition"), "sqrt(mean_i <w, grad l_i>^2) (Liang et al. 2019)",
    ),
    MeasureSpec(
        "top-eigenvalue", "landscape.sharpness.hessian:top_eigenvalue",
        ("tol", "batch_size", "bn_mode", "seed", "progress", "partition", *CURVATURE),
        "lambda_max of the Hessian (or --curvature)", unit="products", work="hvp",
    ),
    MeasureSpec(
        "trace", "landscape.sharpness.hessian:hessian_trace",
        ("rel_stderr", "max_hvps", "batch_size", "bn_mode", "seed", "progress", "partition",
         *CURVATURE),
        "tr H (Hutch++; or of --curvature)", unit="products", work="hvp",
    ),
):  # fmt: skip
    register_measure(_spec)
