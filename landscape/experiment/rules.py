"""The rules that judge the claims of Zhou et al. (ICLR 2025): a declarative table.

Each :class:`Rule` names a claim, the statistic that decides it and, in words, the condition of
each verdict; the ladder functions below are the same conditions in code, with the thresholds
(:data:`REACH`, :data:`LITTLE`, :data:`BARRIER`) written once and used by both. The texts are
what ``landscape experiment late-sam --help`` and docs/experiment.md show
(:func:`rules_text`); landscape.experiment.verdicts computes the statistics and applies them.
Light on purpose (no numpy): the command-line parser imports it.

Verdicts: ``reproduced``, ``partly``, ``not reproduced``, and ``not resolved`` where the
interval is too wide to tell (or the arm the rule needs was not run). Intervals are 95 %
Student-t over seeds, paired within each seed; an interval is anything with ``low`` and
``high`` (landscape.experiment.summary.Interval), NaN where there are fewer than 2 seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class Bounds(Protocol):
    low: float
    high: float


REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RESOLVED = (
    "reproduced",
    "partly",
    "not reproduced",
    "not resolved",
)
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RESOLVED)

REACH = 0.8  # "nearly the same as full SAM": at least 80 % of the SGD -> full-SAM gap closed
LITTLE = 0.2  # "matters little": less than 20 % of full SAM's effect persists after SGD
MOSTLY = 0.5  # "partly": less than half of it persists
BARRIER = 0.02  # Frankle et al. 2020: linearly connected below a 2 pp error barrier
PAPER_SWITCH = 175 / 200  # the paper's main figure: SAM from epoch 175 of 200


@dataclass(frozen=True)
class Rule:
    """One claim and how it is judged; the texts are what --help and the docs show."""

    claim: str
    name: str
    statistic: str
    reproduced: str
    partly: str | None  # None: the rule has no "partly"
    not_reproduced: str


RULES = (
    Rule(
        "late SAM reaches full SAM's flatness",
        "flatness-gap",
        "λ1 gap closed by the late-SAM arm nearest the paper's switch (t0 = 87.5 % of epochs)",
        f"interval above {REACH * 100:g} %",
        "interval above 0",
        f"interval not above 0 and below {REACH * 100:g} %",
    ),
    Rule(
        "late SAM reaches full SAM's generalisation",
        "generalisation-gap",
        "test-error gap closed by the same late-SAM arm",
        f"interval above {REACH * 100:g} %",
        "interval above 0",
        f"interval not above 0 and below {REACH * 100:g} %",
    ),
    Rule(
        "early SAM matters little",
        "early-sam-gap",
        "λ1 gap closed by the SAM->SGD arm (SAM early, then SGD): how much of full SAM's "
        "effect persists",
        f"interval below {LITTLE * 100:g} %",
        f"interval below {MOSTLY * 100:g} % (most of early SAM's effect fades)",
        f"interval above {LITTLE * 100:g} % and not below {MOSTLY * 100:g} %",
    ),
    Rule(
        "late SAM stays in the SGD valley",
        "valley-barrier",
        "train-error barrier (Frankle) on the line SGD -> the same late-SAM arm",
        f"interval below {BARRIER * 100:g} pp",
        "interval below full SAM's barrier (paired difference below 0)",
        f"interval above {BARRIER * 100:g} pp (and not below full SAM's)",
    ),
    Rule(
        "SAM escapes the SGD minimum exponentially fast",
        "escape-exponential",
        "R² of log distance ~ steps minus R² of log distance ~ log steps over the fit window",
        "interval above 0 (exponential fits better than a power law), no curve diverged",
        None,
        "interval below 0 (a power law fits better)",
    ),
)
PRECONDITION = "rules 1-3 need a gap: the paired full SAM - SGD interval of the metric excludes 0"


# -------------------------------------------------------------------- the ladders of the rules


def reach_verdict(gap: Bounds) -> str:
    """Rules 1-2: the share of the gap closed should reach REACH."""
    if not math.isfinite(gap.low):
        return NOT_RESOLVED
    if gap.low > REACH:
        return REPRODUCED
    if gap.low > 0:
        return PARTLY
    if gap.high < REACH:
        return NOT_REPRODUCED
    return NOT_RESOLVED


def little_verdict(gap: Bounds) -> str:
    """Rule 3: the share of the gap closed by SAM early should stay below LITTLE."""
    if not math.isfinite(gap.low):
        return NOT_RESOLVED
    if gap.high < LITTLE:
        return REPRODUCED
    if gap.high < MOSTLY:
        return PARTLY
    if gap.low > LITTLE:
        return NOT_REPRODUCED
    return NOT_RESOLVED


def valley_verdict(barrier: Bounds, versus_full: Bounds) -> str:
    """Rule 4: barrier SGD -> late SAM below BARRIER, or at least below full SAM's."""
    if not math.isfinite(barrier.low):
        return NOT_RESOLVED
    if barrier.high < BARRIER:
        return REPRODUCED
    if math.isfinite(versus_full.high) and versus_full.high < 0:
        return PARTLY
    if barrier.low > BARRIER:
        return NOT_REPRODUCED
    return NOT_RESOLVED


def exponential_verdict(advantage: Bounds, diverged: int) -> str:
    """Rule 5: an exponential fits the early escape better than a power law."""
    if diverged or not math.isfinite(advantage.low):
        return NOT_RESOLVED
    if advantage.low > 0:
        return REPRODUCED
    if advantage.high < 0:
        return NOT_REPRODUCED
    return NOT_RESOLVED


def rules_text() -> str:
    """The rules as a plain-text table (for --help and docs/experiment.md)."""
    lines = []
    for i, rule in enumerate(RULES, 1):
        lines.append(f"{i}. {rule.claim} [{rule.name}]: {rule.statistic}")
        lines.append(f"   reproduced: {rule.reproduced}")
        if rule.partly:
            lines.append(f"   partly: {rule.partly}")
        lines.append(f"   not reproduced: {rule.not_reproduced}")
    lines.append("   otherwise: not resolved (the interval is too wide, or the arm was not run);")
    lines.append(f"   {PRECONDITION}.")
    lines.append("Intervals: 95 % Student-t over seeds, paired within each seed.")
    return "\n".join(lines)
