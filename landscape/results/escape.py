"""``escape/<name>/``: the SAM escape curve from one checkpoint (:mod:`landscape.escape`).

The layout is docs/file-format.md, "escape"; this module is the only code that writes or reads
it. Series are one value per step 0..T (``eigenvalue`` NaN where not computed); the fit of the
growth rate and the SAM settings are group attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.results.arrays import fields_equal, float_array, number
from landscape.results.provenance import Provenance

SERIES = ("step", "distance", "train_loss", "train_acc", "eigenvalue")
FIT_ATTRS = ("growth_rate", "growth_factor", "fit_start", "fit_stop", "diverged_at")
# Settings that are the group's provenance, not the escape's own parameters.
GROUP_OPTIONS = ("bn_mode", "examples")


@dataclass(eq=False)
class EscapeCurve:
    """Distance ||w_t - w_0||, train loss/accuracy and lambda_1 per SAM step; the growth rate
    (slope of log distance per step over steps ``fit_start``..``fit_stop``) and its factor
    exp(rate); ``diverged_at`` the step where the loss diverged (NaN if it did not);
    ``parameters`` the SAM settings (``rho``, ``lr``, ``steps``, ...)."""

    provenance: Provenance
    step: np.ndarray
    distance: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    eigenvalue: np.ndarray
    growth_rate: float = math.nan
    growth_factor: float = math.nan
    fit_start: int = -1
    fit_stop: int = -1
    diverged_at: float = math.nan
    parameters: dict[str, Any] = field(default_factory=dict)

    __eq__ = fields_equal

    @property
    def diverged(self) -> bool:
        return math.isfinite(self.diverged_at)

    @classmethod
    def from_escape(cls, result: Any, provenance: Provenance) -> EscapeCurve:
        """From a :class:`landscape.escape.EscapeResult`."""
        return cls(
            provenance=provenance,
            **{k: np.asarray(getattr(result, k), np.float64) for k in SERIES},
            growth_rate=float(result.growth_rate),
            growth_factor=float(result.growth_factor),
            fit_start=int(result.fit_window[0]),
            fit_stop=int(result.fit_window[1]),
            diverged_at=float(result.diverged_at),
            parameters={k: v for k, v in result.params.items() if k not in GROUP_OPTIONS},
        )

    def write(self, group: h5py.Group) -> None:
        self.provenance.write(group)
        for key in SERIES:
            store.write_dataset(group, key, np.asarray(getattr(self, key), np.float64))
        store.set_attrs(
            group,
            growth_rate=float(self.growth_rate),
            growth_factor=float(self.growth_factor),
            fit_start=int(self.fit_start),
            fit_stop=int(self.fit_stop),
            diverged_at=float(self.diverged_at),
            **self.parameters,
        )

    @classmethod
    def read(cls, group: h5py.Group) -> EscapeCurve:
        """An escape group; a missing series reads as NaN of the length of ``step``."""
        if "step" not in group:
            raise ValueError(f"{group.name.lstrip('/')} has no 'step' dataset")
        attrs = store.read_attrs(group)
        step = float_array(group, "step")
        series = {k: float_array(group, k, step.size) for k in SERIES[1:]}
        provenance = Provenance.read(group)
        own = set(vars(provenance)) | set(FIT_ATTRS)
        return cls(
            provenance=provenance,
            step=step,
            **series,
            growth_rate=number(attrs.get("growth_rate")),
            growth_factor=number(attrs.get("growth_factor")),
            fit_start=int(number(attrs.get("fit_start"), -1)),
            fit_stop=int(number(attrs.get("fit_stop"), -1)),
            diverged_at=number(attrs.get("diverged_at")),
            parameters={k: v for k, v in attrs.items() if k not in own},
        )
