"""``track/<name>/``: sharpness measured along a user's training (:mod:`landscape.track`).

The layout is docs/file-format.md, "track"; this module is the only code that writes or reads
it. ``steps`` holds the training steps at which the model was measured, strictly increasing;
every other dataset has one row per step (``top_k``: ``k`` columns), NaN where a measure was
not taken. The tracker's settings (measures, interval, tolerances, ...) are group attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.results.arrays import fields_equal
from landscape.results.provenance import Provenance

# Per-step series, in file order. ``top_k`` is (n, k); the others (n,).
SERIES = (
    "lambda1",
    "lambda1_error_bound",
    "top_k",
    "trace",
    "trace_stderr",
    "worst_case",
    "gradient_norm",
    "loss",
    "lr",
    "hvp_count",
    "seconds",
)


@dataclass(eq=False)
class TrackResult:
    """Measures of one training run at the steps ``steps``; ``series`` maps a name of
    :data:`SERIES` to its values (one row per step); ``parameters`` the tracker's settings."""

    provenance: Provenance
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    series: dict[str, np.ndarray] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    __eq__ = fields_equal

    def __post_init__(self) -> None:
        self.steps = np.asarray(self.steps, dtype=np.int64).reshape(-1)
        for key, values in self.series.items():
            if key not in SERIES:
                raise ValueError(f"unknown track series {key!r}; known: {', '.join(SERIES)}")
            values = np.asarray(values, dtype=np.float64)
            if values.shape[:1] != self.steps.shape:
                raise ValueError(f"{key} has {values.shape[0]} rows for {self.steps.size} steps")
            self.series[key] = values

    @property
    def measures(self) -> list[str]:
        """The series present, in :data:`SERIES` order."""
        return [k for k in SERIES if k in self.series]

    def append(self, step: int, row: dict[str, Any]) -> None:
        """Add the values of step ``step``; rows at ``step`` or later are dropped first (a
        training restarted from an earlier checkpoint measures them again), so steps stay
        strictly increasing and none is recorded twice."""
        keep = self.steps < step
        self.steps = np.append(self.steps[keep], np.int64(step))
        for key in set(self.series) | set(row):
            old = self.series.get(key)
            value = np.asarray(row.get(key, np.nan), dtype=np.float64)
            if old is None:
                old = np.full((int(keep.sum()), *value.shape), np.nan)
            else:
                old = old[keep]
            if value.shape != old.shape[1:]:
                value = np.broadcast_to(value, old.shape[1:]).copy()
            self.series[key] = np.concatenate([old, value[None]])

    def write(self, group: h5py.Group) -> None:
        self.provenance.write(group)
        store.write_dataset(group, "steps", self.steps)
        for key in self.measures:
            store.write_dataset(group, key, self.series[key])
        store.set_attrs(group, measures=self.measures, **self.parameters)

    @classmethod
    def read(cls, group: h5py.Group) -> TrackResult:
        """A track group; series other than :data:`SERIES` are ignored."""
        if "steps" not in group:
            raise ValueError(f"{group.name.lstrip('/')} has no 'steps' dataset")
        steps = np.asarray(group["steps"][()], dtype=np.int64).reshape(-1)
        series = {
            key: np.asarray(group[key][()], dtype=np.float64)
            for key in SERIES
            if key in group and isinstance(group[key], h5py.Dataset)
        }
        provenance = Provenance.read(group)
        provenance.checkpoint_sha256 = provenance.checkpoint_sha256 or ""  # a live model's
        own = {f for f in vars(provenance)} | {"measures", "writer"}
        attrs = store.read_attrs(group)
        parameters = {k: v for k, v in attrs.items() if k not in own}
        return cls(provenance=provenance, steps=steps, series=series, parameters=parameters)

    def summary(self) -> dict[str, Any]:
        """What ``landscape info`` shows: the steps, and per series its range and last value."""
        requested = self.parameters.get("requested")
        out: dict[str, Any] = {"measures": requested or ", ".join(self.measures)}
        if self.steps.size:
            out["steps"] = {
                "min": int(self.steps[0]),
                "max": int(self.steps[-1]),
                "num": int(self.steps.size),
            }
        for key in self.measures:
            values = self.series[key]
            if values.ndim != 1 or key in ("seconds", "hvp_count", "lambda1_error_bound"):
                continue
            if key == "trace_stderr":
                continue
            finite = values[np.isfinite(values)]
            if finite.size:
                out[key] = {"min": float(finite.min()), "max": float(finite.max())}
                out[f"{key}_last"] = float(finite[-1])
        seconds = self.series.get("seconds")
        if seconds is not None and seconds.size:
            out["seconds_per_measurement"] = float(np.nanmean(seconds))
        return out
