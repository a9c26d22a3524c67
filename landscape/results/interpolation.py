"""``interpolation/<name>/``: metrics along the straight line or polyline between checkpoints.

A polyline through K+1 checkpoints has segment ``s`` from checkpoint ``s`` to ``s + 1``; the
``alpha`` dimension scale is the coordinate along the path, ``segment + segment_alpha``, so
checkpoint k sits at alpha = k. Barrier heights (Frankle et al. 2020; Entezari et al. 2022,
see :mod:`landscape.surface.interpolate`) are group attributes, the largest over segments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import h5py
import numpy as np

from landscape import store
from landscape.results.arrays import fields_equal
from landscape.results.provenance import Provenance
from landscape.results.surface import _metric_names


def json_list(value: object) -> list:
    """A JSON list attribute as a list ([] for anything else)."""
    if isinstance(value, str) and value.startswith("["):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return []
        return decoded if isinstance(decoded, list) else []
    return []


@dataclass(eq=False)
class Interpolation:
    """One interpolation group; ``checkpoints[k]`` is the path of checkpoint k."""

    provenance: Provenance
    segment: np.ndarray
    segment_alpha: np.ndarray
    metrics: dict[str, np.ndarray]
    done: np.ndarray
    checkpoints: list[str] = field(default_factory=list)
    checkpoint_sha256s: list[str] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)
    phases: list[str | None] = field(default_factory=list)
    barriers: dict[str, float] = field(default_factory=dict)
    segment_barriers: dict[str, list[float]] | None = None
    experiment_key: str | None = None  # what `landscape experiment` checks before recomputing

    __eq__ = fields_equal

    @property
    def alpha(self) -> np.ndarray:
        """The coordinate along the path (checkpoint k at k)."""
        return self.segment + self.segment_alpha

    def refresh_barriers(self) -> None:
        """Recompute the barrier heights from the metrics (after points were computed)."""
        from landscape.surface.interpolate import InterpolationResult

        values = InterpolationResult(self.segment, self.segment_alpha, self.metrics, self.done)
        self.barriers = values.barriers()
        self.segment_barriers = values.segment_barriers() if self.segment.max() > 0 else None

    def write(self, group: h5py.Group) -> None:
        """The whole group into an empty ``group``."""
        self.provenance.write(group)
        ends = self.checkpoints or ["", ""]
        store.set_attrs(
            group,
            a=ends[0],
            b=ends[-1],
            checkpoints=self.checkpoints,
            checkpoint_sha256s=self.checkpoint_sha256s,
            epochs=self.epochs,
            phases=self.phases,
        )
        if self.experiment_key is not None:
            group.attrs["experiment_key"] = self.experiment_key
        label = "α (checkpoint k at α = k)" if len(self.checkpoints) > 2 else "α"
        alpha = store.write_dataset(group, "alpha", self.alpha, label=label)
        alpha.make_scale("alpha")
        for name, values in [
            *self.metrics.items(),
            ("done", self.done),
            ("segment", self.segment),
            ("segment_alpha", self.segment_alpha),
        ]:
            store.write_dataset(group, name, np.asarray(values)).dims[0].attach_scale(alpha)
        self.write_values(group)

    def write_values(self, group: h5py.Group) -> None:
        """Overwrite what computing points changes -- metrics, done, seconds, barriers -- in
        place in a group written by :meth:`write`."""
        for name, values in self.metrics.items():
            group[name][...] = values
        group["done"][...] = self.done
        group.attrs["seconds"] = float(self.provenance.seconds or 0.0)
        for key, value in self.barriers.items():
            group.attrs[f"barrier_{key}"] = float(value)
        if self.segment_barriers is not None:
            group.attrs["segment_barriers"] = json.dumps(self.segment_barriers)

    @classmethod
    def read(cls, group: h5py.Group) -> Interpolation:
        attrs = store.read_attrs(group)
        n = group["alpha"].shape[0]

        def array(name: str, default: np.ndarray) -> np.ndarray:
            return np.asarray(group[name][()]) if name in group else default

        alpha = np.asarray(group["alpha"][()])
        segment = array("segment", np.zeros(n, dtype=np.int64))
        segment_barriers = attrs.get("segment_barriers")
        return cls(
            provenance=Provenance.read(group),
            segment=segment,
            segment_alpha=array("segment_alpha", alpha - segment),
            metrics={k: np.asarray(group[k][()]) for k in _metric_names(group)},
            done=array("done", np.ones(n, dtype=bool)).astype(bool),
            checkpoints=[str(c) for c in json_list(attrs.get("checkpoints"))]
            or [str(attrs[k]) for k in ("a", "b") if attrs.get(k)],
            checkpoint_sha256s=[str(c) for c in json_list(attrs.get("checkpoint_sha256s"))],
            epochs=json_list(attrs.get("epochs")),
            phases=json_list(attrs.get("phases")),
            barriers={
                k.removeprefix("barrier_"): float(v)
                for k, v in attrs.items()
                if k.startswith("barrier_") and isinstance(v, (int, float))
            },
            segment_barriers=json.loads(segment_barriers) if segment_barriers else None,
            experiment_key=attrs.get("experiment_key") or None,
        )
