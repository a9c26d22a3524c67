"""The late-SAM experiment figures: error and sharpness against t0; gap closed against SAM steps."""

import math

import numpy as np
import pytest

from landscape.plot import experiment


def test_summary_draws_late_sam_over_t0_full_sam_at_zero_and_sgd_as_a_band(loaded, build):
    record = loaded["experiment"].experiments[0]
    fig = experiment.plot_late_sam_summary(record)
    ax_acc, ax_lam = fig.axes[:2]  # trace is all NaN: no panel for it
    assert len(fig.axes) == 2 and ax_acc.get_ylabel() == "test error (%)"
    late = next(c for c in ax_acc.get_lines() if c.get_gid() == "late-sam-test_error")
    np.testing.assert_array_equal(late.get_xdata(), [25.0, 40.0])
    np.testing.assert_allclose(late.get_ydata(), [8.5, 9.0])
    full = next(c for c in ax_lam.get_lines() if c.get_gid() == "full-sam-lambda1")
    assert (full.get_xdata()[0], full.get_ydata()[0]) == (0.0, 15.0)
    sgd = next(c for c in ax_acc.get_lines() if c.get_gid() == "sgd-test_error")
    assert sgd.get_ydata()[0] == pytest.approx(10.0)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"late SAM (from t$_0$)", "full SAM", "SGD only", "SAM then SGD (at t$_1$)"} <= set(
        legend
    )


def test_an_experiment_without_a_summary_is_skipped_not_an_error(build, tmp_path):
    from landscape.plot import results

    def partial(f):
        f.create_group("experiment/late-sam/runs")
        build.write_escape(f)

    path = build.write_result_file(tmp_path / "x.h5", partial)
    result = results.read_result_file(path)
    assert result.experiments == [] and result.skipped == ["experiment/late-sam"]


def _with_gaps(f):
    """Two seeds; late SAM at 450 and 900 SAM steps closes 20-40 % and 50-70 % of the λ1 gap."""
    from tests.plot.conftest import write_experiment

    write_experiment(f)
    s, r = f["experiment/late-sam/summary"], f["experiment/late-sam/runs"]
    s["sam_steps"] = np.array([0.0, 450.0, 900.0, 3600.0, 900.0])
    s["lambda1_gap_mean"] = np.array([0.0, 0.3, 0.6, 1.0, 0.1])
    s["lambda1_gap_low"] = np.array([np.nan, 0.2, 0.5, np.nan, 0.0])
    s["lambda1_gap_high"] = np.array([np.nan, 0.4, 0.7, np.nan, 0.2])
    for key in list(r):
        del r[key]
    r["arm"] = np.array([b"sgd", b"late-sam", b"late-sam", b"full-sam"] * 2)
    r["sam_steps"] = np.array([0.0, 900.0, 450.0, 3600.0] * 2)
    r["gap_lambda1"] = np.array([0.0, 0.5, 0.2, 1.0, 0.0, 0.7, 0.4, 1.0])


def test_dose_response_draws_the_gap_closed_against_sam_steps_with_seeds_and_intervals(
    build, tmp_path
):
    from landscape.plot import results

    path = build.write_result_file(tmp_path / "x.h5", _with_gaps)
    (record,) = results.read_result_file(path).experiments
    assert experiment.gap_panels_present(record) == [("lambda1", "top eigenvalue λ$_1$")]
    fig = experiment.plot_dose_response(record)
    ax = fig.axes[0]
    mean = next(c for c in ax.get_lines() if c.get_gid() == "late-sam-gap-lambda1")
    np.testing.assert_array_equal(mean.get_xdata(), [450.0, 900.0])
    np.testing.assert_allclose(mean.get_ydata(), [30.0, 60.0])
    seeds = next(c for c in ax.get_lines() if c.get_gid() == "late-sam-gap-lambda1-seeds")
    assert sorted(zip(seeds.get_xdata(), seeds.get_ydata())) == [
        (450, 20),
        (450, 40),
        (900, 50),
        (900, 70),
    ]
    assert ax.get_xscale() == "log" and "gap closed" in ax.get_ylabel()
    assert any(c.get_gid() == "sam-sgd-gap-lambda1" for c in ax.get_lines())


def test_an_experiment_without_paired_columns_has_no_dose_response(loaded):
    record = loaded["experiment"].experiments[0]
    assert experiment.gap_panels_present(record) == []
    assert not math.isnan(record.summary["lambda1_mean"][0])
