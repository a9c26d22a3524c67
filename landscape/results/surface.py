"""``surface/<name>/``: a 1-D or 2-D loss-surface slice (docs/file-format.md).

Values are shaped ``(nx,)`` or ``(nx, ny)`` in 'ij' order (``[i, j]`` is at ``(x[i], y[j])``)
with ``x`` and ``y`` attached as HDF5 dimension scales, NaN and ``done = False`` where a point
is not computed yet. :meth:`Surface.write` creates the group; :meth:`Surface.write_values`
overwrites only what a periodic save changes (metrics, done masks, seconds), in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.results.arrays import fields_equal
from landscape.results.provenance import Provenance, as_flags

METRIC_SUFFIXES = ("_loss", "_acc")
# The options of `landscape surface` a group's config records (cli.surface), in flag order;
# ``curvature`` and ``fisher_samples`` are the matrix of a hessian plane.
SURFACE_OPTIONS = (
    "directions",
    "norm",
    "ignore",
    "bn",
    "x",
    "y",
    "loss",
    "dataset",
    "split",
    "samples",
    "subset_seed",
    "batch_size",
    "dtype",
    "bf16",
    "seed",
    "curvature",
    "fisher_samples",
    "trajectory",
    "other",
)


def _metric_names(group: h5py.Group, *, skip_prefix: str | None = None) -> list[str]:
    return [
        n
        for n in group
        if n.endswith(METRIC_SUFFIXES)
        and isinstance(group[n], h5py.Dataset)
        and not (skip_prefix and n.startswith(skip_prefix))
    ]


def _put(group: h5py.Group, name: str, values: np.ndarray) -> None:
    """Overwrite ``name`` in place when its shape fits (attached scales stay), else rewrite it."""
    values = np.asarray(values)
    if name in group and group[name].shape == values.shape:
        group[name][...] = values
    else:
        store.write_dataset(group, name, values)


def _strings(dataset: h5py.Dataset) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(dataset[()])]


@dataclass(eq=False)
class Trajectory:
    """``trajectory/`` of a PCA plane: the checkpoints' coordinates in the plane, and the true
    metrics at each checkpoint beside the surface's value at its projection onto the plane."""

    x: np.ndarray
    y: np.ndarray
    epoch: np.ndarray | None  # NaN where a checkpoint does not say (None: not recorded)
    distance_to_plane: np.ndarray
    phase: list[str]
    checkpoint: list[str]
    metrics: dict[str, np.ndarray]
    projected: dict[str, np.ndarray]
    done: np.ndarray
    projected_done: np.ndarray

    __eq__ = fields_equal

    @classmethod
    def empty(cls, metric_names: list[str], **coordinates: Any) -> Trajectory:
        """Coordinates as given, every metric NaN and not done."""
        n = len(coordinates["x"])
        nan = {name: np.full(n, np.nan) for name in metric_names}
        return cls(
            **coordinates,
            metrics=nan,
            projected={k: v.copy() for k, v in nan.items()},
            done=np.zeros(n, dtype=bool),
            projected_done=np.zeros(n, dtype=bool),
        )

    @property
    def finished(self) -> int:
        return int(self.done.sum() + self.projected_done.sum())

    @property
    def size(self) -> int:
        return int(self.done.size + self.projected_done.size)

    def write(self, group: h5py.Group) -> None:
        for key in ("x", "y", "epoch", "distance_to_plane"):
            if getattr(self, key) is not None:
                store.write_dataset(group, key, getattr(self, key))
        for key in ("phase", "checkpoint"):
            group.create_dataset(key, data=np.array([s.encode() for s in getattr(self, key)], "S"))
        self.write_values(group)

    def write_values(self, group: h5py.Group) -> None:
        for name, values in self.metrics.items():
            _put(group, name, values)
            _put(group, f"projected_{name}", self.projected[name])
        _put(group, "done", self.done)
        _put(group, "projected_done", self.projected_done)

    @classmethod
    def read(cls, group: h5py.Group) -> Trajectory:
        def array(name: str, fill: float = np.nan) -> np.ndarray:
            return np.asarray(group[name][()]) if name in group else np.full(n, fill)

        x = np.asarray(group["x"][()])
        n = x.size
        names = _metric_names(group, skip_prefix="projected_")
        return cls(
            x=x,
            y=array("y"),
            epoch=np.asarray(group["epoch"][()]) if "epoch" in group else None,
            distance_to_plane=array("distance_to_plane"),
            phase=_strings(group["phase"]) if "phase" in group else [""] * n,
            checkpoint=_strings(group["checkpoint"]) if "checkpoint" in group else [""] * n,
            metrics={k: np.asarray(group[k][()]) for k in names},
            projected={k: array(f"projected_{k}") for k in names},
            done=array("done", False).astype(bool),
            projected_done=array("projected_done", False).astype(bool),
        )


@dataclass(eq=False)
class Surface:
    """One surface group. ``directions`` maps an axis (``x``, ``y``) to its direction, one array
    per parameter name; ``attrs`` holds the direction kind's own group attributes (``a``/``b``
    for ``between``, ``eigenvalues`` and ``curvature`` for ``hessian``)."""

    provenance: Provenance
    x: np.ndarray
    y: np.ndarray | None
    metrics: dict[str, np.ndarray]
    done: np.ndarray
    kind: str | None = None  # the direction kind: random, pca, hessian, between
    norm: str | None = None
    ignore: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    directions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    explained_variance_ratio: np.ndarray | None = None
    trajectory: Trajectory | None = None

    __eq__ = fields_equal

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.x.size,) if self.y is None else (self.x.size, self.y.size)

    def options(self) -> dict[str, Any]:
        """The options that made this surface, by flag name (``subset-seed``), from the stored
        config: a fitted PCA grid (``auto``) and a measured batch size leave out ``x``/``y``
        and ``batch-size``; ``trajectory`` and ``other`` are the checkpoints' paths."""
        config = self.provenance.settings()
        if self.kind == "hessian":  # the matrix: also in files from before it was in config
            config.setdefault("curvature", self.attrs.get("curvature", "hessian"))
            config.setdefault("fisher_samples", self.attrs.get("fisher_samples"))
        config["split"] = ",".join(config.get("splits") or []) or None
        for axis in ("x", "y"):
            if str(config.get(axis)).startswith("auto"):
                config[axis] = None
        if config.get("batch_size") == "auto":
            config["batch_size"] = None
        config["bf16"] = True if config.get("autocast") == "bfloat16" else None
        config["trajectory"] = [t["path"] for t in config.get("trajectory") or []] or None
        config["other"] = (config.get("other") or {}).get("path")
        return as_flags(config, SURFACE_OPTIONS)

    def write(self, group: h5py.Group) -> None:
        """The whole group into an empty ``group``."""
        self.provenance.write(group)
        store.set_attrs(group, directions=self.kind, norm=self.norm, ignore=self.ignore)
        store.set_attrs(group, **self.attrs)
        axes = [store.write_dataset(group, "x", self.x)]
        if self.y is not None:
            axes.append(store.write_dataset(group, "y", self.y))
        for axis, label in zip(axes, (self.x_label, self.y_label)):
            if label is not None:
                axis.attrs["label"] = label
        for axis, key in zip(axes, ("x", "y")):
            axis.make_scale(key)
        for name, values in [*self.metrics.items(), ("done", self.done)]:
            ds = store.write_dataset(group, name, values)
            for dim, axis in enumerate(axes):
                ds.dims[dim].attach_scale(axis)
        for axis, direction in self.directions.items():
            dg = group.create_group(f"directions/{axis}")
            store.set_attrs(
                dg, seed=self.provenance.seed, kind=self.kind, norm=self.norm, ignore=self.ignore
            )
            for name, values in direction.items():
                store.write_dataset(dg, name, values)
        if self.explained_variance_ratio is not None:
            component = store.write_dataset(group, "component", np.array([1, 2]))
            component.make_scale("component")
            evr = store.write_dataset(
                group, "explained_variance_ratio", self.explained_variance_ratio
            )
            evr.dims[0].attach_scale(component)
        if self.trajectory is not None:
            self.trajectory.write(group.create_group("trajectory"))

    def write_values(self, group: h5py.Group) -> None:
        """Overwrite what computing points changes -- metrics, done masks, ``seconds``, the
        evaluation batch -- in place in a group written by :meth:`write` (dimension scales
        stay attached)."""
        for name, values in self.metrics.items():
            group[name][...] = values
        group["done"][...] = self.done
        group.attrs["seconds"] = float(self.provenance.seconds or 0.0)
        prov = self.provenance
        store.set_attrs(
            group, evaluation_batch=prov.evaluation_batch, points_per_pass=prov.points_per_pass
        )
        if self.trajectory is not None:
            self.trajectory.write_values(group["trajectory"])

    @classmethod
    def read(cls, group: h5py.Group, *, directions: bool = True) -> Surface:
        """The group; ``directions=False`` leaves the (model-sized) directions unread."""
        attrs = store.read_attrs(group)
        x = np.asarray(group["x"][()])
        y = np.asarray(group["y"][()]) if "y" in group else None
        metrics = {n: np.asarray(group[n][()]) for n in _metric_names(group)}
        shape = (x.size,) if y is None else (x.size, y.size)
        done = np.asarray(group["done"][()], dtype=bool) if "done" in group else None
        if done is None:  # a hand-made file: what is finite is done
            finite = [np.isfinite(v) for v in metrics.values() if v.shape == shape]
            done = np.all(finite, axis=0) if finite else np.zeros(shape, dtype=bool)
        # the group's own attributes, and the writer's claim (landscape.store.claim_group)
        known = {*Provenance.__dataclass_fields__, "directions", "norm", "ignore", "writer"}
        known.add("sessions")  # the runs that computed its points (analysis.saving)
        return cls(
            provenance=Provenance.read(group),
            x=x,
            y=y,
            metrics=metrics,
            done=done,
            kind=attrs.get("directions") or None,
            norm=attrs.get("norm") or None,
            ignore=attrs.get("ignore") or None,
            x_label=_label(group["x"]),
            y_label=_label(group["y"]) if y is not None else None,
            directions={
                axis: {n: np.asarray(d[()]) for n, d in group[f"directions/{axis}"].items()}
                for axis in group.get("directions", {})
            }
            if directions
            else {},
            attrs={k: v for k, v in attrs.items() if k not in known},
            explained_variance_ratio=np.asarray(group["explained_variance_ratio"][()])
            if "explained_variance_ratio" in group
            else None,
            trajectory=Trajectory.read(group["trajectory"])
            if "trajectory" in group and {"x", "y"} <= set(group["trajectory"])
            else None,
        )


def _label(dataset: h5py.Dataset) -> str | None:
    label = dataset.attrs.get("label")
    if isinstance(label, bytes):
        label = label.decode()
    return str(label) if label else None
