"""What every sharpness measure returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SharpnessMeasurement:
    """One measure on one model.

    ``value`` is the measure; ``stderr`` its Monte-Carlo standard error (NaN for
    deterministic measures); ``loss`` the unperturbed mean loss on the examples;
    ``params`` everything that defines the measure (stored as attributes next to
    the value); ``extra`` secondary numbers worth keeping (perturbed loss,
    per-group values, ...); ``gradient_evaluations`` the cost in full passes of
    forward+backward over the examples (a forward-only pass counts 1/3).
    """

    measure: str
    value: float
    stderr: float = float("nan")
    loss: float = float("nan")
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    gradient_evaluations: float = 0.0
