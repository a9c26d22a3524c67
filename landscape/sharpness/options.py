"""The options of the sharpness analysis, declared once: each measure parameter is one field of
:class:`SharpnessOptions` carrying its flag, help, type and default (:func:`parameter`), from
which ``landscape sharpness`` builds its flags and reads them back
(:mod:`landscape.cli.sharpness`) and every measure picks its keyword arguments
(:meth:`SharpnessOptions.measure_options`). A new parameter is one field here (and the keyword
in the measures that take it, :mod:`landscape.sharpness.registry`).

Nothing here imports torch: the command line reads these while it builds its parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from landscape.loading.context import FIXED_BATCH


@dataclass(frozen=True)
class Parameter:
    """How a measure parameter is spelt on the command line. ``type``: the name of a parser of
    :mod:`landscape.cli.common` (``positive_int``, ``nonnegative_float``, ...); ``key``: its
    keyword in the measures (default: the field's name); ``nargs="+"``: several values, the
    measures take the first; ``default_text``: the default as ``--help`` states it."""

    flag: str
    help: str
    type: str
    aliases: tuple[str, ...] = ()
    nargs: str | None = None
    metavar: str | None = None
    key: str | None = None
    default_text: str | None = None

    @property
    def dest(self) -> str:
        """The argparse destination (and config-file key) of the flag."""
        return self.flag.lstrip("-").replace("-", "_")


def parameter(default: Any, flag: str, help: str, type: str, **spelling: Any) -> Any:
    """A field of :class:`SharpnessOptions` that is a measure parameter (a list default is
    copied per instance)."""
    meta = {"parameter": Parameter(flag, help, type, **spelling)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class SharpnessOptions:
    """The measures (registry names) and their parameters. ``radii``: worst-case sharpness at
    each (stored as ``worst_case_rho<r>`` when there are several); ``batch_size`` None:
    FIXED_BATCH with ``bn_mode="train"``, else the fastest for each measure's work, measured."""

    measures: list[str] = field(default_factory=lambda: ["worst-case"])
    radii: list[float] = parameter(
        [0.05], "--rho", "l2 radius (or radii) of worst-case", "nonnegative_float",
        nargs="+", metavar="RHO", key="rho",
    )  # fmt: skip
    adaptive_rho: float = parameter(
        0.5, "--adaptive-rho", "radius of adaptive-worst-case, relative to |w|",
        "nonnegative_float",
    )  # fmt: skip
    linf_rho: float = parameter(
        0.001, "--linf-rho", "radius of adaptive-worst-case-linf, relative to |w|",
        "nonnegative_float",
    )  # fmt: skip
    steps: int = parameter(20, "--steps", "ascent steps", "positive_int")
    m: int | None = parameter(
        None, "--m", "m-sharpness: maximise per group of m examples and average", "positive_int",
        # the same flag under torchrun, whose own parser takes --m for its options
        aliases=("--group-size",), default_text="all at once",
    )  # fmt: skip
    sigma: float = parameter(0.01, "--sigma", "noise std of average-case", "nonnegative_float")
    adaptive_sigma: float = parameter(
        0.1, "--adaptive-sigma", "relative noise std of adaptive-average-case",
        "nonnegative_float",
    )  # fmt: skip
    draws: int = parameter(100, "--draws", "Monte-Carlo draws of average-case", "positive_int")
    tol: float = parameter(
        1e-3, "--tol", "relative residual of the top eigenvalue", "positive_float",
        default_text="1e-3",
    )  # fmt: skip
    rel_stderr: float = parameter(
        0.05, "--trace-rel-stderr", "relative standard error of the Hessian trace",
        "positive_float",
    )  # fmt: skip
    bn_mode: str = "eval"
    batch_size: int | None = None
    loss: str = "cross-entropy"
    split: str = "train"
    dtype: str = "float32"
    seed: int = 0
    subset_seed: int | None = None  # the examples' seed, where they were drawn (recorded only)
    dataset: str | None = None  # the examples' dataset's name (recorded only)
    curvature: str = "hessian"  # the matrix of top-eigenvalue and trace (CURVATURES)
    fisher_samples: int = 1  # labels per example of curvature "fisher-mc"

    def measure_options(self) -> dict:
        """The keyword options every measure picks its own from (the stored ``config``)."""
        batch = self.batch_size or (FIXED_BATCH if self.bn_mode == "train" else "auto")
        options = {}
        for name, spelling in parameters().items():
            value = getattr(self, name)
            options[spelling.key or name] = value[0] if spelling.nargs == "+" else value
        return {
            **options,
            "batch_size": batch,
            "bn_mode": self.bn_mode,
            "seed": self.seed,
            "curvature": self.curvature,
            "fisher_samples": self.fisher_samples,
        }


def parameters() -> dict[str, Parameter]:
    """The measure parameters of :class:`SharpnessOptions`, by field name, in flag order."""
    return {f.name: f.metadata["parameter"] for f in fields(SharpnessOptions) if f.metadata}


def parameter_defaults() -> dict[str, Any]:
    """The default of each measure parameter, by field name."""
    defaults = SharpnessOptions()
    return {name: getattr(defaults, name) for name in parameters()}
