"""Mean +- std over seeds per arm, as arrays for the result file and a markdown table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

METRICS = ("test_acc", "lambda1", "trace", "worst_case")
HEADERS = {"test_acc": "test acc (%)", "lambda1": "λ1", "trace": "trace", "worst_case": "worst-case sharpness"}


@dataclass
class ArmSummary:
    arm_label: str
    arm: str
    t0: float
    t1: float
    n_seeds: int
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)


def summarise(rows: list[dict]) -> list[ArmSummary]:
    """Group run rows (``arm_label``, ``arm``, ``t0``, ``t1`` and the METRICS) by arm label,
    in the order arms first appear; std is the sample standard deviation (0 for one seed)."""
    order: list[str] = []
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["arm_label"] not in groups:
            order.append(row["arm_label"])
            groups[row["arm_label"]] = []
        groups[row["arm_label"]].append(row)
    out = []
    for label in order:
        members = groups[label]
        first = members[0]
        summary = ArmSummary(label, first["arm"], first["t0"], first["t1"], len(members))
        for metric in METRICS:
            values = np.array([m.get(metric, math.nan) for m in members], dtype=np.float64)
            values = values[np.isfinite(values)]
            summary.mean[metric] = float(values.mean()) if values.size else math.nan
            summary.std[metric] = float(values.std(ddof=1)) if values.size > 1 else (0.0 if values.size else math.nan)
        out.append(summary)
    return out


def _cell(mean: float, std: float, scale: float = 1.0, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean * scale:.{digits}g} ± {std * scale:.{digits - 1}g}"


def format_table(summaries: list[ArmSummary]) -> str:
    """A markdown table: arm, seeds, then mean ± std of each metric."""
    header = ["arm", "seeds"] + [HEADERS[m] for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s.arm_label, str(s.n_seeds)]
        for metric in METRICS:
            scale, digits = (100.0, 4) if metric == "test_acc" else (1.0, 3)
            cells.append(_cell(s.mean[metric], s.std[metric], scale, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
