"""Per-arm statistics over seeds, raw and paired, as arrays for the result file and markdown.

Raw: mean +- sample std over seeds of every metric. Paired (within each seed): the share
of the SGD -> full-SAM gap an arm closes,

    gap closed = (m_SGD - m_arm) / (m_SGD - m_full-SAM)      (0: like SGD, 1: like full SAM)

and the difference m_arm - m_SGD, each averaged over seeds with a 95 % Student-t interval
mean +- t_{0.975, n-1} s / sqrt(n). Seed-to-seed spread of a metric is often larger than an
arm's effect, while the effect has the same sign in every seed; the paired numbers show it.
A seed whose SGD and full-SAM values are equal has no gap and is left out of the gap mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Raw metrics in table order; worst-case sharpness at other radii follows (worst_case_rho*).
METRICS = ("test_acc", "test_loss", "lambda1", "trace", "worst_case")
# Metrics of the paired comparison: test error gives the same gap as test accuracy.
PAIRED = ("test_acc", "test_loss", "lambda1", "trace", "worst_case")
HEADERS = {
    "test_acc": "test acc (%)",
    "test_loss": "test loss",
    "lambda1": "λ1",
    "trace": "trace",
    "worst_case": "worst-case sharpness",
}
PAIRED_HEADERS = {
    "test_acc": "test error",
    "test_loss": "test loss",
    "lambda1": "λ1",
    "trace": "trace",
    "worst_case": "worst-case",
}
CONFIDENCE = 0.95


@dataclass
class Interval:
    """Mean over seeds with its two-sided t-interval (NaN bounds for fewer than 2 seeds)."""

    mean: float
    low: float
    high: float
    n: int


@dataclass
class ArmSummary:
    arm_label: str
    arm: str
    t0: float
    t1: float
    n_seeds: int
    sam_steps: float = math.nan
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    # the share of the SGD -> full-SAM gap closed, and arm - SGD, paired within each seed
    gap: dict[str, Interval] = field(default_factory=dict)
    diff: dict[str, Interval] = field(default_factory=dict)


def radius_metric(rho: float) -> str:
    """The column name of worst-case sharpness at radius ``rho``."""
    return f"worst_case_rho{rho:g}"


def metrics_of(rows: list[dict]) -> list[str]:
    """The raw metrics present in the rows, in table order."""
    keys = set().union(*(row.keys() for row in rows)) if rows else set()
    extra = sorted((k for k in keys if k.startswith("worst_case_rho")), key=lambda k: float(k[14:]))
    return [m for m in METRICS if m in keys] + extra


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean and Student-t interval of the finite values."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = int(values.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def paired_columns(rows: list[dict], metrics=PAIRED) -> list[dict]:
    """Per run: ``gap_<metric>`` and ``diff_<metric>`` against the same seed's SGD and full-SAM
    runs (NaN where one is missing or the gap is zero). Rows are not changed."""
    by_seed: dict[int, dict[str, dict]] = {}
    for row in rows:
        if row["arm"] in ("sgd", "full-sam"):
            by_seed.setdefault(row["seed"], {})[row["arm"]] = row
    out = []
    for row in rows:
        anchors = by_seed.get(row.get("seed"), {})
        sgd, full = anchors.get("sgd"), anchors.get("full-sam")
        columns = {}
        for metric in metrics:
            value = row.get(metric, math.nan)
            base = sgd.get(metric, math.nan) if sgd else math.nan
            target = full.get(metric, math.nan) if full else math.nan
            gap = base - target
            columns[f"diff_{metric}"] = value - base
            columns[f"gap_{metric}"] = (
                (base - value) / gap if gap != 0 and math.isfinite(gap) else math.nan
            )
        out.append(columns)
    return out


def summarise(rows: list[dict]) -> list[ArmSummary]:
    """Group run rows (``arm_label``, ``arm``, ``t0``, ``t1``, metrics, optionally ``seed`` and
    ``sam_steps``) by arm label, in the order arms first appear; std is the sample standard
    deviation (0 for one seed). Paired statistics need ``seed`` in every row."""
    metrics = metrics_of(rows)
    paired = paired_columns(rows) if rows and all("seed" in r for r in rows) else [{} for _ in rows]
    order: list[str] = []
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["arm_label"] not in groups:
            order.append(row["arm_label"])
            groups[row["arm_label"]] = []
        groups[row["arm_label"]].append(i)
    out = []
    for label in order:
        members = [rows[i] for i in groups[label]]
        first = members[0]
        summary = ArmSummary(
            label,
            first["arm"],
            first["t0"],
            first["t1"],
            len(members),
            float(first.get("sam_steps", math.nan)),
        )
        for metric in metrics:
            values = np.array([m.get(metric, math.nan) for m in members], dtype=np.float64)
            values = values[np.isfinite(values)]
            summary.mean[metric] = float(values.mean()) if values.size else math.nan
            summary.std[metric] = (
                float(values.std(ddof=1)) if values.size > 1 else (0.0 if values.size else math.nan)
            )
        for metric in PAIRED:
            columns = [paired[i] for i in groups[label]]
            summary.gap[metric] = t_interval([c.get(f"gap_{metric}", math.nan) for c in columns])
            summary.diff[metric] = t_interval([c.get(f"diff_{metric}", math.nan) for c in columns])
        out.append(summary)
    return out


def _cell(mean: float, std: float, scale: float = 1.0, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean * scale:.{digits}g} ± {std * scale:.{digits - 1}g}"


def _percent(interval: Interval, seeds: int) -> str:
    """``mean [low, high]`` in percent; says so when seeds without a gap were left out."""
    if not math.isfinite(interval.mean):
        return "–"
    text = f"{100 * interval.mean:.0f}"
    if math.isfinite(interval.low):
        text += f" [{100 * interval.low:.0f}, {100 * interval.high:.0f}]"
    if interval.n < seeds:
        text += f" ({interval.n} of {seeds} seeds)"
    return text


def _header(metric: str) -> str:
    if metric.startswith("worst_case_rho"):
        return f"worst-case ρ={metric[14:]}"
    return HEADERS[metric]


def format_table(summaries: list[ArmSummary]) -> str:
    """A markdown table: arm, seeds, then mean ± std of each metric (worst-case sharpness once
    per radius when there are radius columns; ``worst_case`` is one of them)."""
    metrics = [m for m in METRICS if summaries and m in summaries[0].mean]
    radii = [m for m in (summaries[0].mean if summaries else {}) if m.startswith("worst_case_rho")]
    if radii:
        metrics = [m for m in metrics if m != "worst_case"] + radii
    header = ["arm", "seeds"] + [_header(m) for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s.arm_label, str(s.n_seeds)]
        for metric in metrics:
            scale, digits = (100.0, 4) if metric == "test_acc" else (1.0, 3)
            cells.append(_cell(s.mean[metric], s.std[metric], scale, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_paired_table(summaries: list[ArmSummary]) -> str:
    """A markdown table of the gap closed (%, mean [95 % t-interval] over seeds) per arm;
    the SGD and full-SAM arms (0 and 100 % by definition) are left out."""
    header = ["arm", "SAM steps", "seeds"] + [f"{PAIRED_HEADERS[m]} gap closed (%)" for m in PAIRED]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        if s.arm in ("sgd", "full-sam"):
            continue
        steps = f"{s.sam_steps:,.0f}" if math.isfinite(s.sam_steps) else "–"
        cells = [s.arm_label, steps, str(s.n_seeds)]
        cells += [_percent(s.gap[m], s.n_seeds) if m in s.gap else "–" for m in PAIRED]
        lines.append("| " + " | ".join(cells) + " |")
    if any(
        s.gap[m].n < s.n_seeds for s in summaries if s.arm not in ("sgd", "full-sam") for m in s.gap
    ):
        lines += ["", "(a seed whose SGD and full-SAM values are equal has no gap and is left out)"]
    return "\n".join(lines)


def format_full_sam_difference(summaries: list[ArmSummary]) -> str:
    """Full SAM - SGD, paired within each seed: is SAM's effect larger than the seed noise?"""
    full = next((s for s in summaries if s.arm == "full-sam"), None)
    if full is None or not full.diff:
        return ""
    parts = []
    for metric in PAIRED:
        d = full.diff.get(metric)
        if d is None or not math.isfinite(d.mean):
            continue
        scale, unit = (-100.0, " pp") if metric == "test_acc" else (1.0, "")  # as test error
        low, high = sorted((scale * d.low, scale * d.high))
        interval = f" [{low:.3g}, {high:.3g}]" if math.isfinite(d.low) else ""
        parts.append(f"{PAIRED_HEADERS[metric]} {scale * d.mean:+.3g}{unit}{interval}")
    if not parts:
        return ""
    return (
        f"full SAM - SGD, paired within each seed (mean [95 % t-interval], {full.n_seeds} seeds): "
        + ", ".join(parts)
    )


def format_summary(summaries: list[ArmSummary]) -> str:
    """Both tables, raw first, with a line saying what the paired numbers are."""
    paired = format_paired_table(summaries)
    text = format_table(summaries)
    difference = format_full_sam_difference(summaries)
    if difference:
        text += "\n\n" + difference
    if len(paired.splitlines()) > 2:
        text += (
            "\n\nShare of the SGD -> full-SAM gap closed, within each seed; mean "
            f"[{100 * CONFIDENCE:.0f} % t-interval] over seeds:\n\n" + paired
        )
    return text
