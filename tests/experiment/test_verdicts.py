"""Each claim's verdict follows its stated rule (landscape.experiment.verdicts), one case per
verdict, on constructed summaries."""

import math

import numpy as np
import pytest

from landscape.experiment.rules import (
    NOT_REPRODUCED,
    NOT_RESOLVED,
    PARTLY,
    REPRODUCED,
    RULES,
    rules_text,
)
from landscape.experiment.summary import ArmSummary, Interval
from landscape.experiment.verdicts import fit_advantage, format_verdicts, judge

EPOCHS = 200
SEEDS = 4
GAP = Interval(-1.0, -1.5, -0.5, SEEDS)  # full SAM - SGD on λ1 / test acc: a clear gap
NO_GAP = Interval(0.1, -0.4, 0.6, SEEDS)


def arm(label, kind, t0=math.nan, t1=math.nan, gap=None, diff=None):
    s = ArmSummary(label, kind, t0, t1, SEEDS, sam_steps=100.0)
    for metric in ("test_acc", "lambda1"):
        s.gap[metric] = gap or Interval(math.nan, math.nan, math.nan, 0)
        s.diff[metric] = diff or Interval(math.nan, math.nan, math.nan, 0)
    return s


def summaries(late_gap=None, sam_sgd_gap=None, full_diff=GAP):
    """SGD, late SAM at t0 = 150 and 175 (the deciding arm), full SAM, SAM->SGD."""
    decoy = Interval(5.0, 4.0, 6.0, SEEDS)  # the late arm the rules must not read
    return [
        arm("sgd", "sgd"),
        arm("late-sam t0=150", "late-sam", t0=150, gap=decoy),
        arm("late-sam t0=175", "late-sam", t0=175, gap=late_gap),
        arm("full-sam", "full-sam", t0=0, diff=full_diff),
        arm("sam-sgd t1=100", "sam-sgd", t0=0, t1=100, gap=sam_sgd_gap),
    ]


def barrier_rows(late, full):
    """Per seed: the train-error barrier from SGD to the deciding late arm and to full SAM."""
    rows = []
    for seed, (b_late, b_full) in enumerate(zip(late, full)):
        rows.append(
            {
                "arm": "late-sam",
                "arm_label": "late-sam t0=175",
                "seed": seed,
                "barrier_train_error": b_late,
            }
        )
        rows.append(
            {
                "arm": "full-sam",
                "arm_label": "full-sam",
                "seed": seed,
                "barrier_train_error": b_full,
            }
        )
    return rows


def verdict_of(name, summaries_=None, rows=(), escapes=()):
    found = judge(summaries_ or summaries(), list(rows), list(escapes), EPOCHS)
    return next(v for v in found if v.rule == name)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (Interval(0.95, 0.85, 1.05, SEEDS), REPRODUCED),
        (Interval(0.5, 0.2, 0.8, SEEDS), PARTLY),
        (Interval(0.1, -0.2, 0.4, SEEDS), NOT_REPRODUCED),
        (Interval(0.5, -0.5, 1.5, SEEDS), NOT_RESOLVED),
    ],
)
@pytest.mark.parametrize("rule", ["flatness-gap", "generalisation-gap"])
def test_late_sam_reaching_full_sam_is_judged_on_the_gap_closed_interval(rule, gap, expected):
    verdict = verdict_of(rule, summaries(late_gap=gap))
    assert verdict.verdict == expected
    assert verdict.numbers.startswith("late-sam t0=175")  # the arm nearest 175 of 200 epochs
    assert f"{100 * gap.mean:.0f} [{100 * gap.low:.0f}, {100 * gap.high:.0f}] %" in verdict.numbers
    assert "; full SAM - SGD " in verdict.numbers  # the gap being shared, with its interval


@pytest.mark.parametrize("rule", ["flatness-gap", "generalisation-gap", "early-sam-gap"])
def test_a_share_of_a_gap_is_not_resolved_when_full_sam_does_not_differ_from_sgd(rule):
    good = Interval(0.95, 0.9, 1.0, SEEDS)
    verdict = verdict_of(rule, summaries(good, Interval(0.0, -0.05, 0.05, SEEDS), NO_GAP))
    assert verdict.verdict == NOT_RESOLVED and "includes 0" in verdict.numbers


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (Interval(0.05, -0.05, 0.15, SEEDS), REPRODUCED),
        (Interval(0.35, 0.25, 0.45, SEEDS), PARTLY),
        (Interval(0.8, 0.73, 0.86, SEEDS), NOT_REPRODUCED),
        (Interval(0.3, 0.1, 0.6, SEEDS), NOT_RESOLVED),
    ],
)
def test_early_sam_mattering_little_is_judged_on_the_sam_sgd_gap_closed(gap, expected):
    assert verdict_of("early-sam-gap", summaries(sam_sgd_gap=gap)).verdict == expected


@pytest.mark.parametrize(
    ("late", "full", "expected"),
    [
        ([0.001, 0.002, 0.0, 0.001], [0.2, 0.3, 0.25, 0.2], REPRODUCED),
        ([0.05, 0.06, 0.04, 0.05], [0.2, 0.3, 0.25, 0.2], PARTLY),
        ([0.05, 0.06, 0.04, 0.05], [0.05, 0.06, 0.05, 0.04], NOT_REPRODUCED),
        ([0.0, 0.1, 0.0, 0.1], [0.0, 0.1, 0.1, 0.0], NOT_RESOLVED),
    ],
)
def test_staying_in_the_sgd_valley_is_judged_on_the_error_barrier(late, full, expected):
    verdict = verdict_of("valley-barrier", rows=barrier_rows(late, full))
    assert verdict.verdict == expected
    assert f"barrier {100 * np.mean(late):.2g}" in verdict.numbers


def escape(distance, diverged_at=math.nan):
    distance = np.asarray(distance, dtype=float)
    return {
        "fit_advantage": fit_advantage(distance, (1, len(distance) - 1)),
        "diverged_at": diverged_at,
    }


STEPS = np.arange(40, dtype=float)


@pytest.mark.parametrize(
    ("curves", "expected"),
    [
        ([1e-3 * np.exp(r * STEPS) for r in (0.1, 0.12, 0.11)], REPRODUCED),
        ([1e-3 * STEPS**p for p in (0.5, 0.6, 0.55)], NOT_REPRODUCED),
        (
            [1e-3 * np.exp(0.1 * STEPS), 1e-3 * STEPS**0.5, 1e-3 * np.exp(0.12 * STEPS)],
            NOT_RESOLVED,
        ),
    ],
)
def test_an_exponential_escape_is_one_an_exponential_fits_better_than_a_power_law(curves, expected):
    assert verdict_of("escape-exponential", escapes=[escape(c) for c in curves]).verdict == expected


def test_a_diverged_escape_leaves_the_exponential_claim_not_resolved():
    curves = [escape(1e-3 * np.exp(0.1 * STEPS)) for _ in range(3)]
    curves[1]["diverged_at"] = 12.0
    verdict = verdict_of("escape-exponential", escapes=curves)
    assert verdict.verdict == NOT_RESOLVED and "1 of 3 curves DIVERGED" in verdict.numbers


def test_a_missing_arm_is_not_resolved():
    only = [s for s in summaries() if s.arm != "sam-sgd"]
    assert verdict_of("early-sam-gap", only).verdict == NOT_RESOLVED


def test_one_printed_line_per_claim_names_verdict_rule_and_numbers():
    verdicts = judge(summaries(Interval(0.95, 0.85, 1.05, SEEDS)), [], [], EPOCHS)
    lines = format_verdicts(verdicts).splitlines()[1:]
    assert len(lines) == len(RULES)
    for line, rule in zip(lines, RULES):
        assert f"{rule.claim} [{rule.name}]:" in line
    assert lines[0].split()[0] == "REPRODUCED"


def test_the_rules_text_states_every_rule_once():
    text = rules_text()
    for rule in RULES:
        assert text.count(f"[{rule.name}]") == 1 and rule.reproduced in text
