"""``hessian/<name>/``: eigenvalues, trace and spectral density of one checkpoint.

The layout is docs/file-format.md, "hessian"; this module is the only code that writes or reads
it (``landscape hessian``, ``landscape experiment``, ``plot``, ``report``, ``info``). Only what
was computed is present, except ``trace`` and ``trace_stderr``, which are NaN when the trace
was not asked for. ``blocks/<block>/`` holds the same quantities for one block of parameters
(a layer, say): the Hessian restricted to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.results.arrays import fields_equal, float_array, number, scalar
from landscape.results.provenance import Provenance, as_flags

# The options of `landscape hessian` that shape each part of a result, by their config keys
# (analysis.hessian._config; ``hvp`` is the engine that ran, cached or func): what ``info`` shows.
OPERATOR_OPTIONS = (
    "curvature",
    "fisher_samples",
    "loss",
    "label_smoothing",
    "weight_decay_term",
    "bn",
    "hvp",
    "batch_size",
    "dataset",
    "split",
    "samples",
    "subset_seed",
    "dtype",
    "seed",
)
EIGENVALUE_OPTIONS = ("top_k", "bottom_k", "tol", "stop", "max_hvps", "warm_start")
TRACE_OPTIONS = ("trace", "trace_method", "trace_rel_stderr", "trace_max_hvps")
DENSITY_OPTIONS = ("density", "density_runs", "density_steps", "density_sigma", "density_lockstep")


@dataclass(eq=False)
class Eigenvalues:
    """Top (descending) or bottom (ascending) eigenvalues of one Lanczos run.

    ``residuals`` are ||Hv - lambda v|| of the unit Ritz vectors, ``error_bounds`` the
    Kato-Temple bounds min(r, r^2/gap) on |lambda - exact| (NaN where not known);
    ``eigenvectors`` maps each parameter's name to its (k, *shape) part, when kept.
    ``stop`` names the rule ``converged`` refers to (``gap``: the error bounds, ``residual``:
    the residuals); ``start`` is ``random``, or ``warm`` when Lanczos started from the previous
    checkpoint's Ritz vectors.
    """

    values: np.ndarray
    residuals: np.ndarray
    error_bounds: np.ndarray
    converged: bool
    tol: float
    hvp_count: int
    eigenvectors: dict[str, np.ndarray] | None = None
    stop: str = "residual"
    start: str = "random"

    __eq__ = fields_equal

    @classmethod
    def from_lanczos(
        cls, eig: Any, eigenvectors: dict[str, np.ndarray] | None = None, start: str = "random"
    ) -> Eigenvalues:
        """From a :class:`landscape.curvature.lanczos.EigResult`."""
        values = np.asarray(eig.eigenvalues, np.float64)
        bounds = eig.error_bounds if eig.error_bounds is not None else np.full(values.size, np.nan)
        return cls(
            values=values,
            residuals=np.asarray(eig.residuals, np.float64),
            error_bounds=np.asarray(bounds, np.float64),
            converged=bool(eig.converged),
            tol=float(eig.tol),
            hvp_count=int(eig.hvp_count),
            eigenvectors=eigenvectors,
            stop=str(getattr(eig, "stop", "residual")),
            start=start,
        )

    def write(self, group: h5py.Group, prefix: str = "") -> None:
        store.write_dataset(
            group,
            f"{prefix}eigenvalues",
            np.asarray(self.values, np.float64),
            converged=bool(self.converged),
            tol=float(self.tol),
            hvp_count=int(self.hvp_count),
            stop=self.stop,
            start=self.start,
        )
        store.write_dataset(group, f"{prefix}residuals", np.asarray(self.residuals, np.float64))
        store.write_dataset(
            group, f"{prefix}error_bounds", np.asarray(self.error_bounds, np.float64)
        )
        if self.eigenvectors:
            folder = group.create_group(f"{prefix}eigenvectors")
            for name, array in self.eigenvectors.items():
                store.write_dataset(folder, name, array)
            store.set_attrs(folder, parameter_names=list(self.eigenvectors))

    @classmethod
    def read(cls, group: h5py.Group, prefix: str = "") -> Eigenvalues | None:
        """None when the group holds no such eigenvalues."""
        name = f"{prefix}eigenvalues"
        if name not in group:
            return None
        values = float_array(group, name)
        attrs = store.read_attrs(group[name])
        vectors = None
        if f"{prefix}eigenvectors" in group:
            folder = group[f"{prefix}eigenvectors"]
            names = store.read_attrs(folder).get("parameter_names")
            names = _json_names(names) or list(folder)
            vectors = {n: np.asarray(folder[n][()]) for n in names if n in folder}
        return cls(
            values=values,
            residuals=float_array(group, f"{prefix}residuals", values.size),
            error_bounds=float_array(group, f"{prefix}error_bounds", values.size),
            converged=bool(attrs.get("converged", False)),
            tol=number(attrs.get("tol")),
            hvp_count=int(number(attrs.get("hvp_count"), 0)),
            eigenvectors=vectors,
            stop=str(attrs.get("stop") or "residual"),  # files from before the gap rule
            start=str(attrs.get("start") or "random"),
        )


def _json_names(value: Any) -> list[str]:
    import json

    if isinstance(value, str) and value.startswith("["):
        return [str(v) for v in json.loads(value)]
    return []


@dataclass(eq=False)
class Trace:
    """tr H with its standard error, and how it was estimated (:mod:`landscape.curvature.trace`)."""

    value: float
    stderr: float
    method: str
    converged: bool
    samples: int
    sketch_rank: int
    hvp_count: int

    __eq__ = fields_equal

    @classmethod
    def from_estimate(cls, trace: Any) -> Trace:
        """From a :class:`landscape.curvature.trace.TraceResult`."""
        return cls(
            value=float(trace.trace),
            stderr=float(trace.stderr),
            method=str(trace.method),
            converged=bool(trace.converged),
            samples=int(trace.samples),
            sketch_rank=int(trace.sketch_rank),
            hvp_count=int(trace.hvp_count),
        )

    @staticmethod
    def write(trace: Trace | None, group: h5py.Group) -> None:
        """``trace`` and ``trace_stderr``; NaN (without attributes) when ``trace`` is None."""
        if trace is None:
            store.write_dataset(group, "trace", math.nan)
            store.write_dataset(group, "trace_stderr", math.nan)
            return
        store.write_dataset(
            group,
            "trace",
            float(trace.value),
            method=trace.method,
            converged=bool(trace.converged),
            samples=int(trace.samples),
            sketch_rank=int(trace.sketch_rank),
            hvp_count=int(trace.hvp_count),
        )
        store.write_dataset(group, "trace_stderr", float(trace.stderr))

    @classmethod
    def read(cls, group: h5py.Group) -> Trace | None:
        value = scalar(group, "trace")
        if math.isnan(value):
            return None
        attrs = store.read_attrs(group["trace"])
        return cls(
            value=value,
            stderr=scalar(group, "trace_stderr"),
            method=str(attrs.get("method", "")),
            converged=bool(attrs.get("converged", False)),
            samples=int(number(attrs.get("samples"), 0)),
            sketch_rank=int(number(attrs.get("sketch_rank"), 0)),
            hvp_count=int(number(attrs.get("hvp_count"), 0)),
        )


@dataclass(eq=False)
class Density:
    """Stochastic Lanczos quadrature (Ghorbani et al. 2019): the smoothed density ``values``
    on ``grid`` and the (runs, steps) Gauss nodes and weights it was smoothed from;
    ``lockstep``: the runs advanced together, one batched product per step (``--density-
    lockstep``; the same density up to rounding)."""

    grid: np.ndarray
    values: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    hvp_count: int
    lockstep: bool = False

    __eq__ = fields_equal

    @classmethod
    def from_slq(cls, density: Any) -> Density:
        """From a :class:`landscape.curvature.density.Density`."""
        return cls(
            grid=np.asarray(density.grid, np.float64),
            values=np.asarray(density.values, np.float64),
            nodes=np.asarray(density.nodes, np.float64),
            weights=np.asarray(density.weights, np.float64),
            sigma=float(density.sigma),
            hvp_count=int(density.hvp_count),
            lockstep=bool(getattr(density, "lockstep", False)),
        )

    def write(self, group: h5py.Group) -> None:
        folder = group.create_group("density")
        for name in ("grid", "values", "nodes", "weights"):
            store.write_dataset(folder, name, np.asarray(getattr(self, name), np.float64))
        nodes = np.asarray(self.nodes)
        store.set_attrs(
            folder,
            sigma=float(self.sigma),
            runs=int(nodes.shape[0]) if nodes.ndim == 2 else 0,
            steps=int(nodes.shape[1]) if nodes.ndim == 2 else 0,
            hvp_count=int(self.hvp_count),
            lockstep=bool(self.lockstep),
        )

    @classmethod
    def read(cls, group: h5py.Group) -> Density | None:
        folder = group.get("density")
        if not isinstance(folder, h5py.Group) or "grid" not in folder or "values" not in folder:
            return None
        attrs = store.read_attrs(folder)
        return cls(
            grid=float_array(folder, "grid"),
            values=float_array(folder, "values"),
            nodes=np.asarray(folder["nodes"][()], np.float64) if "nodes" in folder else _empty(),
            weights=np.asarray(folder["weights"][()], np.float64)
            if "weights" in folder
            else _empty(),
            sigma=number(attrs.get("sigma")),
            hvp_count=int(number(attrs.get("hvp_count"), 0)),
            lockstep=bool(attrs.get("lockstep", False)),  # files from before the option: False
        )


def _count(value: float) -> int:
    return 0 if math.isnan(value) else int(value)


def _empty() -> np.ndarray:
    return np.empty((0, 0))


@dataclass(eq=False)
class Block:
    """The curvature restricted to one block of parameters (``blocks/<group name>/``, the
    group named by :func:`landscape.curvature.blocks.storage_name`): a ``layer`` block by its
    module's qualified name, a ``type`` block by its kind, a regular expression by itself."""

    name: str
    parameter_names: list[str]
    dim: int = 0
    hvp_count: int = 0
    top: Eigenvalues | None = None
    bottom: Eigenvalues | None = None
    trace: Trace | None = None
    density: Density | None = None

    __eq__ = fields_equal

    @classmethod
    def from_spectrum(cls, spectrum: Any) -> Block:
        """From a :class:`landscape.curvature.blocks.BlockSpectrum`."""
        return cls(
            name=spectrum.name,
            parameter_names=list(spectrum.parameters),
            dim=int(spectrum.dim),
            hvp_count=int(spectrum.hvp_count),
            top=Eigenvalues.from_lanczos(spectrum.top) if spectrum.top is not None else None,
            bottom=Eigenvalues.from_lanczos(spectrum.bottom)
            if spectrum.bottom is not None
            else None,
            trace=Trace.from_estimate(spectrum.trace) if spectrum.trace is not None else None,
            density=Density.from_slq(spectrum.density) if spectrum.density is not None else None,
        )

    def write(self, group: h5py.Group) -> None:
        store.set_attrs(
            group, name=self.name, dim=int(self.dim), parameter_names=list(self.parameter_names)
        )
        store.write_dataset(group, "hvp_count", int(self.hvp_count))
        if self.top is not None:
            self.top.write(group)
        if self.bottom is not None:
            self.bottom.write(group, prefix="bottom_")
        if self.trace is not None:
            Trace.write(self.trace, group)
        if self.density is not None:
            self.density.write(group)

    @classmethod
    def read(cls, group: h5py.Group) -> Block:
        attrs = store.read_attrs(group)
        return cls(
            name=str(attrs.get("name") or group.name.split("/")[-1]),
            parameter_names=_json_names(attrs.get("parameter_names")),
            dim=int(number(attrs.get("dim"), 0)),
            hvp_count=_count(scalar(group, "hvp_count")),
            top=Eigenvalues.read(group),
            bottom=Eigenvalues.read(group, prefix="bottom_"),
            trace=Trace.read(group) if "trace" in group else None,
            density=Density.read(group),
        )


@dataclass(eq=False)
class HessianResult:
    """One checkpoint's curvature: whatever of top/bottom eigenvalues, trace and density was
    asked for. ``curvature`` names the matrix ("hessian"; other curvature matrices such as the
    Gauss-Newton one share the layout); ``cost_note`` says what one product cost."""

    provenance: Provenance
    hvp_count: int
    top: Eigenvalues | None = None
    bottom: Eigenvalues | None = None
    trace: Trace | None = None
    density: Density | None = None
    cost_note: str = ""
    curvature: str = "hessian"
    blocks: dict[str, Block] = field(default_factory=dict)

    __eq__ = fields_equal

    def options(self) -> dict[str, Any]:
        """The options that made this result, by flag name (``top-k``: ``--top-k``), from
        the stored config and what the group holds: the operator's, then those of each
        quantity present (eigenvalues, trace, density), then ``blocks``. Files written before
        an option was recorded lack it (the experiment's hessian groups record only some)."""
        config = self.provenance.settings()
        config["curvature"] = self.curvature
        if config.get("hvp_engine") in ("cached", "func"):
            config["hvp"] = config["hvp_engine"]
        keys = list(OPERATOR_OPTIONS)
        if self.top is not None or self.bottom is not None or self.blocks:
            config.setdefault("top_k", self.top.values.size if self.top is not None else 0)
            if (self.top or self.bottom) is not None:
                config.setdefault("tol", (self.top or self.bottom).tol)
            keys += EIGENVALUE_OPTIONS
            for k in ("top_k", "bottom_k"):  # 0: not computed
                config[k] = config.get(k) or None
        if self.trace is not None:
            config.update(trace=True, trace_method=config.get("trace_method", self.trace.method))
            keys += TRACE_OPTIONS
        if self.density is not None:
            keys += DENSITY_OPTIONS
        return as_flags(config, [*keys, "blocks"])

    def write(self, group: h5py.Group) -> None:
        self.provenance.write(group)
        store.set_attrs(group, cost_note=self.cost_note, curvature=self.curvature)
        if self.top is not None:
            self.top.write(group)
        if self.bottom is not None:
            self.bottom.write(group, prefix="bottom_")
        Trace.write(self.trace, group)
        store.write_dataset(group, "hvp_count", int(self.hvp_count))
        if self.density is not None:
            self.density.write(group)
        if self.blocks:
            from landscape.curvature.blocks import storage_name

            folder = group.create_group("blocks")
            store.set_attrs(folder, order=[storage_name(name) for name in self.blocks])
            for name, block in self.blocks.items():
                block.write(folder.create_group(storage_name(name)))

    @classmethod
    def read(cls, group: h5py.Group) -> HessianResult:
        attrs = store.read_attrs(group)
        blocks = group.get("blocks")
        return cls(
            provenance=Provenance.read(group),
            hvp_count=_count(scalar(group, "hvp_count")),
            top=Eigenvalues.read(group),
            bottom=Eigenvalues.read(group, prefix="bottom_"),
            trace=Trace.read(group),
            density=Density.read(group),
            cost_note=str(attrs.get("cost_note", "")),
            curvature=str(attrs.get("curvature") or "hessian"),
            blocks=_read_blocks(blocks) if isinstance(blocks, h5py.Group) else {},
        )


def _read_blocks(folder: h5py.Group) -> dict[str, Block]:
    """The blocks in the order they were written (attr ``order``; HDF5 lists names sorted)."""
    order = [n for n in _json_names(store.read_attrs(folder).get("order")) if n in folder]
    blocks = [Block.read(folder[key]) for key in order or list(folder)]
    return {block.name: block for block in blocks}
