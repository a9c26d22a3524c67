"""The late-SAM experiment summary: accuracy and sharpness against the SAM start epoch."""

import numpy as np

from landscape.plot import experiment


def test_summary_draws_late_sam_over_t0_full_sam_at_zero_and_sgd_as_a_band(loaded, build):
    record = loaded["experiment"].experiments[0]
    fig = experiment.plot_late_sam_summary(record)
    ax_acc, ax_lam = fig.axes[:2]  # trace is all NaN: no panel for it
    assert len(fig.axes) == 2 and ax_acc.get_ylabel() == "test accuracy (%)"
    late = next(c for c in ax_acc.get_lines() if c.get_gid() == "late-sam-test_acc")
    np.testing.assert_array_equal(late.get_xdata(), [25.0, 40.0])
    np.testing.assert_allclose(late.get_ydata(), [91.5, 91.0])
    full = next(c for c in ax_lam.get_lines() if c.get_gid() == "full-sam-lambda1")
    assert (full.get_xdata()[0], full.get_ydata()[0]) == (0.0, 15.0)
    sgd = next(c for c in ax_acc.get_lines() if c.get_gid() == "sgd-test_acc")
    assert sgd.get_ydata()[0] == 90.0
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"late SAM (from t$_0$)", "full SAM", "SGD only", "SAM then SGD (at t$_1$)"} <= set(legend)


def test_an_experiment_without_a_summary_is_skipped_not_an_error(build, tmp_path):
    from landscape.plot import results

    def partial(f):
        f.create_group("experiment/late-sam/runs")
        build.write_escape(f)

    path = build.write_result_file(tmp_path / "x.h5", partial)
    result = results.read_result_file(path)
    assert result.experiments == [] and result.skipped == ["experiment/late-sam"]
