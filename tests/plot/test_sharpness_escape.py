"""Sharpness measures per checkpoint and escape runs."""

import numpy as np
from matplotlib.collections import LineCollection

from landscape.plot import escape, sharpness


def test_scalar_measures_get_one_panel_each_against_epoch(loaded):
    records = loaded["sharpness"].sharpness
    fig = sharpness.plot_sharpness_measures(records)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["gradient norm", "worst case (ρ=0.05)"]
    ax = fig.axes[1]
    line = next(line for line in ax.get_lines() if line.get_gid() == "measure-worst_case")
    np.testing.assert_array_equal(line.get_xdata(), [60, 80, 85, 90, 100])
    np.testing.assert_allclose(line.get_ydata(), [float(r.measures["worst_case"]) for r in records])
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_gid() == "switch"] == [80]


def test_the_title_names_parameters_not_by_products_and_stderr_gives_error_bars(loaded):
    from dataclasses import replace

    records = [
        replace(
            r,
            measure_attrs={
                **r.measure_attrs,
                "worst_case": {
                    "rho": 0.05,
                    "steps": 20,
                    "loss": 0.13,
                    "seconds": 6.2,
                    "stderr": 0.01,
                },
            },
        )
        for r in loaded["sharpness"].sharpness
    ]
    fig = sharpness.plot_sharpness_measures(records)
    ax = fig.axes[1]
    assert ax.get_title() == "worst case (ρ=0.05, steps=20)"
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(bars) == 1 and len(bars[0].get_segments()) == 5


def test_a_measure_over_several_rho_is_drawn_against_rho(loaded):
    records = loaded["sharpness"].sharpness
    assert sharpness.curve_measures(records) == ["average"]
    fig = sharpness.plot_sharpness_curve(records, "average")
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [0.01, 0.02, 0.05, 0.1])
    assert fig.axes[0].get_xlabel() == "ρ"


def test_escape_draws_distance_on_a_log_axis_and_states_the_growth_rate(loaded):
    record = loaded["escape"].escapes[0]
    fig = escape.plot_escape(record)
    ax_dist, ax_loss, ax_eig = fig.axes[:3]
    assert ax_dist.get_yscale() == "log"
    distance = ax_dist.get_lines()[0]
    assert distance.get_xdata()[0] == 1  # step 0 (distance 0) cannot sit on a log axis
    assert "growth rate 0.12 / step" in [t.get_text() for t in ax_dist.texts]
    eig = ax_eig.get_lines()[0]
    np.testing.assert_array_equal(eig.get_xdata(), np.arange(0, 61, 10))  # only computed steps
    assert "ρ=0.05" in ax_dist.get_title() and ax_eig.get_xlabel() == "SAM step"
