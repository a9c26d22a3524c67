"""``sharpness/<name>/<measure>``: sharpness measures of one checkpoint, one dataset each.

The layout is docs/file-format.md, "sharpness"; this module is the only code that writes or
reads it. A measure's value is a scalar (or an array for measures of several radii written by
hand); its attributes are ``stderr``, ``loss``, ``seconds``, ``gradient_evaluations`` and the
measure's own parameters. Measures computed on the same checkpoint and examples accumulate:
:meth:`SharpnessResult.merged_over` keeps the earlier ones a new run does not recompute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.results.arrays import fields_equal, number
from landscape.results.provenance import Provenance, as_flags

# The provenance that says two runs measured the same thing (the examples and the operator),
# and the config entries that do so where both runs recorded them (older files lack them).
SAME_EXAMPLES = ("checkpoint_sha256", "split", "samples", "seed", "bn_mode", "dtype")
SAME_CONFIG = ("loss", "subset_seed")
# The flag of each stored measure parameter (``landscape sharpness``); the adaptive measures'
# radius has a flag of its own (ADAPTIVE_RADIUS_FLAGS, keyed by the measure's ``norm``).
PARAMETER_FLAGS = {
    "curvature": "curvature",
    "fisher_samples": "fisher-samples",
    "rho": "rho",
    "steps": "steps",
    "m": "m",
    "sigma": "sigma",
    "draws": "draws",
    "tol": "tol",
    "rel_stderr": "trace-rel-stderr",
}
ADAPTIVE_RADIUS_FLAGS = {"l2": {"rho": "adaptive-rho"}, "linf": {"rho": "linf-rho"}}
ADAPTIVE_NOISE_FLAGS = {"sigma": "adaptive-sigma"}
# Options that are the group's (provenance), not the measure's own parameters.
GROUP_OPTIONS = ("bn_mode", "seed", "examples")
COMMON_ATTRS = ("stderr", "loss", "seconds", "gradient_evaluations")


@dataclass(eq=False)
class MeasureValue:
    """One measure: ``value`` (+- ``stderr``, NaN for deterministic measures), the unperturbed
    ``loss``, its cost, and ``parameters``: what defines it (``rho``, ``steps``, ...)."""

    value: float | np.ndarray
    stderr: float = math.nan
    loss: float = math.nan
    seconds: float = math.nan
    gradient_evaluations: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)

    __eq__ = fields_equal

    @classmethod
    def from_measure(cls, result: Any, seconds: float) -> MeasureValue:
        """From a :class:`landscape.sharpness.SharpnessMeasurement`; its scalar ``extra`` numbers
        are kept as parameters (lists, such as per-group values, are not stored)."""
        parameters = {k: v for k, v in result.params.items() if k not in GROUP_OPTIONS}
        parameters.update({k: v for k, v in result.extra.items() if not isinstance(v, list)})
        return cls(
            value=float(result.value),
            stderr=float(result.stderr),
            loss=float(result.loss),
            seconds=float(seconds),
            gradient_evaluations=float(result.gradient_evaluations),
            parameters=parameters,
        )

    def write(self, group: h5py.Group, name: str) -> None:
        store.write_dataset(
            group,
            name,
            self.value,
            stderr=float(self.stderr),
            loss=float(self.loss),
            seconds=float(self.seconds),
            gradient_evaluations=float(self.gradient_evaluations),
            **self.parameters,
        )

    def options(self) -> dict[str, Any]:
        """The measure's parameters that are command-line flags, by flag name (``rho`` of
        adaptive-worst-case is ``adaptive-rho``); the others (``algorithm``, ``norm``, ...)
        are fixed by the measure and stay in :attr:`parameters`."""
        flags = dict(PARAMETER_FLAGS)
        if bool(self.parameters.get("adaptive", False)):
            flags.update(ADAPTIVE_NOISE_FLAGS)
            flags.update(ADAPTIVE_RADIUS_FLAGS.get(str(self.parameters.get("norm")), {}))
        given = self.parameters
        return {flag: given[k] for k, flag in flags.items() if given.get(k) is not None}

    @classmethod
    def read(cls, dataset: h5py.Dataset) -> MeasureValue:
        attrs = store.read_attrs(dataset)
        value = np.asarray(dataset[()], dtype=np.float64)
        return cls(
            value=float(value) if value.ndim == 0 else value,
            stderr=number(attrs.get("stderr")),
            loss=number(attrs.get("loss")),
            seconds=number(attrs.get("seconds")),
            gradient_evaluations=number(attrs.get("gradient_evaluations"), 0.0),
            parameters={k: v for k, v in attrs.items() if k not in COMMON_ATTRS},
        )


@dataclass(eq=False)
class SharpnessResult:
    """Every measure of one checkpoint on one set of examples, by dataset name."""

    provenance: Provenance
    measures: dict[str, MeasureValue] = field(default_factory=dict)

    __eq__ = fields_equal

    def write(self, group: h5py.Group) -> None:
        self.provenance.write(group)
        for name, measure in self.measures.items():
            measure.write(group, name)

    @classmethod
    def read(cls, group: h5py.Group) -> SharpnessResult:
        measures = {
            name: MeasureValue.read(item)
            for name, item in group.items()
            if isinstance(item, h5py.Dataset) and np.issubdtype(item.dtype, np.number)
        }
        return cls(Provenance.read(group), measures)

    def options(self) -> dict[str, Any]:
        """The options every measure of the group shares, by flag name (``subset-seed``)."""
        config = self.provenance.settings()
        if config.get("batch_size") == "auto":  # measured per measure
            config["batch_size"] = None
        keys = ("loss", "bn", "batch_size", "dataset", "split", "samples", "subset_seed")
        return as_flags(config, (*keys, "dtype", "seed"))

    def measured_like(self, other: SharpnessResult) -> bool:
        """Whether ``other`` was computed on the same checkpoint, examples and operator."""
        mine, theirs = vars(self.provenance), vars(other.provenance)
        same = all(str(mine[k] or "") == str(theirs[k] or "") for k in SAME_EXAMPLES)
        mine, theirs = self.provenance.config, other.provenance.config
        both = [k for k in SAME_CONFIG if k in mine and k in theirs]
        return same and all(mine[k] == theirs[k] for k in both)

    def merged_over(self, earlier: SharpnessResult | None) -> SharpnessResult:
        """This result plus the measures of ``earlier`` it does not recompute, when both were
        measured alike; else this result alone."""
        if earlier is None or not self.measured_like(earlier):
            return self
        return SharpnessResult(self.provenance, {**earlier.measures, **self.measures})


def write_merged(f: h5py.File, name: str, result: SharpnessResult) -> None:
    """Write ``result`` as ``sharpness/<name>``, keeping the measures already there that were
    measured alike (:meth:`SharpnessResult.merged_over`)."""
    path = f"sharpness/{store.safe_group_name(name)}"
    earlier = SharpnessResult.read(f[path]) if path in f else None
    result.merged_over(earlier).write(store.replace_group(f, path))
