"""bench_hessian decides only on what it measured: extrapolated figures are shown, never
judged; close calls are the median of three runs; every peer is credited by its own samples."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _peers as peers  # noqa: E402
import bench_hessian as bench  # noqa: E402
from _peers import Credit  # noqa: E402
from bench_hessian import Ratio, median_credit, near_target, verdict  # noqa: E402


def test_extrapolated_ratios_are_left_out_of_the_verdict():
    values = [Ratio(12.0, estimated=True), Ratio(12.0, estimated=True), Ratio(2.0)]
    median, met = verdict(values, 5.0)
    assert median == "2.00x" and met.startswith("no") and "2 extrapolated left out" in met


def test_a_verdict_of_extrapolated_ratios_alone_is_not_measured():
    median, met = verdict([Ratio(12.0, estimated=True)] * 3, 5.0)
    assert median == "--" and "yes" not in met and met.startswith("not measured")


@pytest.mark.parametrize(
    ("marks", "values", "expected"),
    [
        ((">", ">", ">"), (6.0, 7.0, 8.0), "yes"),
        ((">", ">", ">"), (1.0, 1.2, 8.0), "not shown"),  # lower bounds below: undecided
        (("", "", ""), (1.4, 1.49, 1.6), "no"),
        (("<", "<", "<"), (1.0, 1.0, 1.0), "no"),
    ],
)
def test_bounds_decide_only_the_side_they_bound(marks, values, expected):
    assert verdict([Ratio(v, m) for v, m in zip(values, marks)], 1.5)[1] == expected


def test_an_extrapolated_credit_makes_its_ratio_extrapolated():
    ours, theirs = Credit(2.0, 10), Credit(20.0, 60, estimated=True)
    ratio = bench.credit_ratio(ours, theirs)
    assert ratio.value == 10.0 and ratio.estimated and ratio.shown() == "~10.00"


def test_repeated_runs_are_credited_with_the_median_run():
    runs = [Credit(3.0, 9), Credit(1.0, 7), Credit(2.0, 8, reached=False, estimated=True)]
    credit = median_credit(runs)
    assert (credit.seconds, credit.products) == (2.0, 8)
    assert not credit.reached and credit.estimated and "median of 3" in credit.note


@pytest.mark.parametrize(("pyhessian_seconds", "near"), [(2.7, True), (3.5, True), (2.0, False)])
def test_a_ratio_within_a_fifth_of_its_target_is_measured_again(pyhessian_seconds, near):
    top = {
        "top-1": {"landscape": Credit(1.0, 5), "pyhessian": Credit(pyhessian_seconds, 20)},
        "top-5": {"landscape": Credit(1.0, 20), "pyhessian": Credit(20.0, 100)},
    }
    assert ("top-1 vs PyHessian" in near_target(top)) == near


def test_too_few_samples_are_extrapolated_and_enough_are_read_off():
    rng = np.random.default_rng(0)
    values = 100 + rng.normal(0, 1, 30)
    ends = np.arange(1, 31, dtype=float)
    few = peers.sampled_credit(values[:6], 0.0, ends[:6], 0.0, 0.0, 0.01)
    enough = peers.sampled_credit(values, 0.0, ends, 0.0, 0.0, 0.01)
    assert few[2] and few[0] >= peers.MIN_SAMPLES  # 6 < MIN_SAMPLES: extrapolated
    assert not enough[2] and enough == (peers.MIN_SAMPLES, ends[peers.MIN_SAMPLES - 1], False)


def _tiny():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    return model.double(), x, y


@pytest.mark.slow  # importing curvlinops costs ~10 s
def test_curvlinops_residual_samples_are_what_its_estimate_averages():
    pytest.importorskip("curvlinops")
    from curvlinops import hutchpp_trace

    model, x, y = _tiny()
    op = peers.curvlinops_operator(model, [(x, y)])
    blocks = peers.record_matmuls(op)
    estimate = float(hutchpp_trace(op, 9))
    assert [b[0].shape[1] for b in blocks] == [3, 3, 3]  # sketch, A Q, residual vectors
    q, aq = blocks[1][:2]
    r, ar = blocks[2][:2]
    samples = (r * ar).sum(0)
    assert estimate == pytest.approx(float((q * aq).sum() + samples.mean()), rel=1e-10)


@pytest.mark.slow
def test_curvlinops_trace_is_credited_with_its_own_samples_not_a_peers_count():
    pytest.importorskip("curvlinops")
    model, x, y = _tiny()
    start, ends, estimate, samples = peers.curvlinops_trace(model, [(x, y)], 3 * peers.MIN_SAMPLES)
    assert len(ends) == 3 * peers.MIN_SAMPLES and len(samples) == peers.MIN_SAMPLES
    assert list(ends) == sorted(ends) and ends[0] > start
    credit = peers.hutchpp_credit(start, ends, estimate, samples, 1e-9)
    assert credit.estimated and credit.products > 3 * peers.MIN_SAMPLES  # 1e-9: extrapolated
    loose = peers.hutchpp_credit(start, ends, estimate, samples, 10.0)
    assert not loose.estimated and loose.products == 2 * peers.MIN_SAMPLES + peers.MIN_SAMPLES


def test_the_lanczos_bound_grows_as_the_gap_closes():
    wide, hard = (
        bench.lanczos_bound(2.0, 1.0, 0.0, 10**5),
        bench.lanczos_bound(1.15, 1.0, 0.0, 10**5),
    )
    assert wide < hard and bench.lanczos_bound(1.15, 1.0, -1.15, 10**5) > hard


@pytest.mark.parametrize("ratio", [1.5, 1.15, 1.05])
def test_lanczos_meets_1e4_within_the_bound_on_a_spectrum_with_that_gap(ratio):
    from landscape.curvature import lanczos_eigs
    from tests.curvature.matrix_operator import MatrixOperator

    n = 400
    values = torch.cat(
        [torch.tensor([ratio]), torch.linspace(1.0, 0.0, n - 1, dtype=torch.float64)]
    )
    op = MatrixOperator(torch.diag(values.double()))
    bound = bench.lanczos_bound(ratio, 1.0, 0.0, n)
    theta = None
    for steps in range(2, bound + 1):  # the first product count whose top Ritz value is in
        op.hvp_count = 0
        r = lanczos_eigs(op, 1, tol=1e-12, max_hvps=steps, eigenvectors=False, seed=1)
        theta = float(r.eigenvalues[0])
        if abs(theta - ratio) / ratio <= 1e-4:
            break
    assert abs(theta - ratio) / ratio <= 1e-4
