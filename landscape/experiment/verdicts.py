"""Verdicts on the claims of Zhou et al. (ICLR 2025), each computed by one stated rule.

The paper ("Sharpness-Aware Minimization Efficiently Selects Flatter Minima Late in Training")
claims that a few epochs of SAM at the end of training give (1) nearly the flatness and (2)
nearly the generalisation of full SAM; that (3) SAM early in training matters little; that
late SAM (4) stays in the valley of the SGD solution, after (5) escaping the SGD minimum
exponentially fast. landscape.experiment.rules states, once, how each claim is judged;
this module computes the deciding statistics from the experiment's paired statistics
(landscape.experiment.summary), :func:`judge` applies the rules and :func:`format_verdicts`
prints one line per claim with the numbers that decided it.

Gap closed (summary.py): ``(m_SGD - m_arm) / (m_SGD - m_full-SAM)`` within each seed, mean and
95 % Student-t interval over seeds. A share of a gap means something only when there is a gap,
so rules 1-3 first ask that the paired full SAM - SGD interval excludes 0.
The interpolation barrier is Frankle et al.'s (ICML 2020, "Linear mode connectivity and the
lottery ticket hypothesis"): the largest rise of train error above the straight line between
the endpoints' errors; they call two solutions linearly connected below 2 percentage points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from landscape.experiment.rules import (
    NOT_RESOLVED,
    PAPER_SWITCH,
    RULES,
    VERDICTS,
    Rule,
    exponential_verdict,
    little_verdict,
    reach_verdict,
    valley_verdict,
)
from landscape.experiment.summary import ArmSummary, Interval, t_interval


@dataclass
class Verdict:
    claim: str
    rule: str
    verdict: str
    numbers: str  # the deciding numbers, in words


# ---------------------------------------------------------------------------- the statistics


def deciding_late_arm(summaries: Sequence[ArmSummary], epochs: int) -> ArmSummary | None:
    """The late-SAM arm whose t0 is nearest the paper's 175 of 200 epochs (the later on a tie)."""
    late = [s for s in summaries if s.arm == "late-sam"]
    if not late:
        return None
    return min(late, key=lambda s: (abs(s.t0 / epochs - PAPER_SWITCH), -s.t0))


def _percent(i: Interval) -> str:
    if not math.isfinite(i.mean):
        return "–"
    bounds = f" [{100 * i.low:.0f}, {100 * i.high:.0f}]" if math.isfinite(i.low) else ""
    return f"{100 * i.mean:.0f}{bounds} %"


def _difference(d: Interval, metric: str) -> str:
    """Full SAM - SGD as printed: test accuracy as test error in points."""
    sign = -1.0 if metric == "test_acc" else 1.0
    scale, unit = (100.0, " pp") if metric == "test_acc" else (1.0, "")
    low, high = sorted((sign * d.low * scale, sign * d.high * scale))
    name = "test error" if metric == "test_acc" else {"lambda1": "λ1"}.get(metric, metric)
    return f"full SAM - SGD {name} {sign * d.mean * scale:+.3g}{unit} [{low:.3g}, {high:.3g}]"


def _gap_precondition(full: ArmSummary | None, metric: str) -> str | None:
    """Why there is no gap to share (None: there is one)."""
    if full is None:
        return "no full-SAM arm"
    d = full.diff.get(metric)
    if d is None or not math.isfinite(d.low):
        return "full SAM - SGD has no interval (fewer than 2 seeds)"
    if d.low <= 0 <= d.high:
        return f"no gap: {_difference(d, metric)} includes 0"
    return None


def _gap_verdict(rule: Rule, arm: ArmSummary | None, full, metric: str, ladder) -> Verdict:
    if arm is None:
        return Verdict(rule.claim, rule.name, NOT_RESOLVED, "the arm was not run")
    missing = _gap_precondition(full, metric)
    if missing:
        return Verdict(rule.claim, rule.name, NOT_RESOLVED, f"{arm.arm_label}: {missing}")
    gap = arm.gap[metric]
    return Verdict(
        rule.claim,
        rule.name,
        ladder(gap),
        f"{arm.arm_label} ({arm.sam_steps:,.0f} SAM steps): gap closed {_percent(gap)}, "
        f"{gap.n} seeds; {_difference(full.diff[metric], metric)}",
    )


def barrier_interval(rows: Sequence[dict], arm_label: str) -> Interval:
    """Mean and interval over seeds of the train-error barrier from SGD to ``arm_label``."""
    return t_interval(
        [r.get("barrier_train_error", math.nan) for r in rows if r["arm_label"] == arm_label]
    )


def barrier_difference(rows: Sequence[dict], arm_label: str) -> Interval:
    """Paired within seeds: barrier to ``arm_label`` minus barrier to full SAM."""
    full = {
        r["seed"]: r.get("barrier_train_error", math.nan) for r in rows if r["arm"] == "full-sam"
    }
    return t_interval(
        [
            r.get("barrier_train_error", math.nan) - full.get(r["seed"], math.nan)
            for r in rows
            if r["arm_label"] == arm_label
        ]
    )


def fit_advantage(distance: np.ndarray, window: tuple[int, int]) -> float:
    """R² of log d ~ t minus R² of log d ~ log t over ``window`` (steps with d > 0).

    Both are straight-line least-squares fits of log distance: against the step (an
    exponential, d = c e^(r t)) and against the log of the step (a power law, d = c t^p, which
    includes the linear drift of a plain descent). Positive: the exponential fits better.
    """
    distance = np.asarray(distance, dtype=np.float64)
    start, stop = window
    if start < 0:
        return math.nan
    steps = np.arange(max(start, 1), min(stop, len(distance) - 1) + 1)
    steps = steps[np.isfinite(distance[steps]) & (distance[steps] > 0)]
    if steps.size < 3:
        return math.nan
    y = np.log(distance[steps])
    return _r2(steps.astype(np.float64), y) - _r2(np.log(steps.astype(np.float64)), y)


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    slope, intercept = np.polyfit(x, y, 1)
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - slope * x - intercept) ** 2).sum()) / total if total > 0 else 1.0


# ----------------------------------------------------------------------------------- judging


def judge(
    summaries: Sequence[ArmSummary],
    rows: Sequence[dict],
    escapes: Sequence[dict],
    epochs: int,
) -> list[Verdict]:
    """One verdict per rule of :data:`RULES`, in that order.

    ``rows``: the per-run rows (``barrier_train_error`` for late-SAM and full-SAM runs);
    ``escapes``: one dict per escape curve with ``fit_advantage`` and ``diverged_at``.
    """
    flat, general, early, valley, escape = RULES
    full = next((s for s in summaries if s.arm == "full-sam"), None)
    late = deciding_late_arm(summaries, epochs)
    sam_sgd = next((s for s in summaries if s.arm == "sam-sgd"), None)
    out = [
        _gap_verdict(flat, late, full, "lambda1", reach_verdict),
        _gap_verdict(general, late, full, "test_acc", reach_verdict),
        _gap_verdict(early, sam_sgd, full, "lambda1", little_verdict),
    ]
    if late is None:
        out.append(Verdict(valley.claim, valley.name, NOT_RESOLVED, "no late-SAM arm"))
    else:
        barrier = barrier_interval(rows, late.arm_label)
        versus = barrier_difference(rows, late.arm_label)
        numbers = f"{late.arm_label}: barrier {_pp(barrier)}"
        if math.isfinite(versus.mean):
            numbers += f", minus full SAM's {_pp(versus, signed=True)}"
        numbers += f", {barrier.n} seeds"
        out.append(Verdict(valley.claim, valley.name, valley_verdict(barrier, versus), numbers))
    if not escapes:
        out.append(Verdict(escape.claim, escape.name, NOT_RESOLVED, "no escape curve was run"))
    else:
        diverged = sum(math.isfinite(e["diverged_at"]) for e in escapes)
        advantage = t_interval([e.get("fit_advantage", math.nan) for e in escapes])
        numbers = f"R² advantage {_plain(advantage)}, {advantage.n} seeds"
        if diverged:
            numbers += f"; {diverged} of {len(escapes)} curves DIVERGED"
        out.append(
            Verdict(escape.claim, escape.name, exponential_verdict(advantage, diverged), numbers)
        )
    return out


def _pp(i: Interval, signed: bool = False) -> str:
    if not math.isfinite(i.mean):
        return "–"
    mean = f"{100 * i.mean:+.2g}" if signed else f"{100 * i.mean:.2g}"
    bounds = f" [{100 * i.low:.2g}, {100 * i.high:.2g}]" if math.isfinite(i.low) else ""
    return f"{mean}{bounds} pp"


def _plain(i: Interval) -> str:
    if not math.isfinite(i.mean):
        return "–"
    bounds = f" [{i.low:.3g}, {i.high:.3g}]" if math.isfinite(i.low) else ""
    return f"{i.mean:.3g}{bounds}"


# -------------------------------------------------------------------------------- printing


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    """One line per claim: verdict, claim, rule name and the deciding numbers."""
    width = max(len(v) for v in VERDICTS)
    lines = ["Verdicts (rules: landscape experiment late-sam --help, docs/experiment.md):"]
    for v in verdicts:
        lines.append(f"  {v.verdict.upper():<{width}}  {v.claim} [{v.rule}]: {v.numbers}")
    return "\n".join(lines)
