"""Hessian spectra against epoch (switch marked) and spectral densities on a log axis."""

import numpy as np
import pytest

from landscape.plot import hessian, style


@pytest.fixture
def records(loaded):
    return loaded["hessian"].hessian


def test_lambda1_and_trace_against_epoch_hold_the_file_values(records):
    fig = hessian.plot_hessian_vs_epoch(hessian.group_by_run(records))
    ax_eig, ax_tr = fig.axes[:2]
    lam1 = next(line for line in ax_eig.get_lines() if line.get_gid() == "lambda1-late-sam")
    np.testing.assert_array_equal(lam1.get_xdata(), [20, 40, 60, 80, 85, 90, 100])
    np.testing.assert_allclose(lam1.get_ydata(), [r.eigenvalues[0] for r in records])
    lam5 = next(line for line in ax_eig.get_lines() if line.get_gid() == "lambda5-late-sam")
    np.testing.assert_allclose(lam5.get_ydata(), [r.eigenvalues[4] for r in records])
    trace = ax_tr.get_lines()[0]
    np.testing.assert_allclose(trace.get_ydata(), [r.trace for r in records])
    assert (
        ax_tr.get_xlabel() == "epoch"
        and "eigenvalue" in ax_eig.get_ylabel()
        and "trace" in ax_tr.get_ylabel()
    )


def test_the_switch_is_marked_at_the_last_sgd_epoch_on_both_panels(records):
    fig = hessian.plot_hessian_vs_epoch(hessian.group_by_run(records))
    for ax in fig.axes[:2]:
        switches = [line for line in ax.get_lines() if line.get_gid() == "switch"]
        assert [s.get_xdata()[0] for s in switches] == [80]
    assert style.SWITCH_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]


def test_phases_have_their_own_marker_colours(records):
    fig = hessian.plot_hessian_vs_epoch(hessian.group_by_run(records))
    scatter = {c.get_gid(): c for c in fig.axes[0].collections}
    assert (
        len(scatter["phase-sgd"].get_offsets()) == 4
        and len(scatter["phase-sam"].get_offsets()) == 3
    )
    assert not np.allclose(
        scatter["phase-sgd"].get_facecolor()[0], scatter["phase-sam"].get_facecolor()[0]
    )


def test_checkpoints_of_different_runs_become_different_lines(records):
    other = [
        type(r)(
            **{
                **r.__dict__,
                "meta": type(r.meta)(**{**r.meta.__dict__, "checkpoint": "ck/sgd-only/x.pt"}),
            }
        )
        for r in records[:3]
    ]
    runs = hessian.group_by_run(list(records) + other)
    assert list(runs) == ["late-sam", "sgd-only"]
    fig = hessian.plot_hessian_vs_epoch(runs)
    assert {"late-sam", "sgd-only"} <= {t.get_text() for t in fig.legends[0].get_texts()}


def test_density_is_drawn_on_a_log_axis_with_positive_values(records):
    fig = hessian.plot_density(records[:1])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "eigenvalue λ"
    line = next(line for line in ax.get_lines() if line.get_gid() == f"density-{records[0].name}")
    np.testing.assert_allclose(line.get_xdata(), records[0].density_grid)
    assert (line.get_ydata() > 0).all()
    assert any(c.get_gid() == "topk-rug" for c in ax.collections)


def test_several_densities_are_coloured_by_epoch_with_a_colour_bar(records):
    fig = hessian.plot_density(records)
    assert (
        len(
            [
                line
                for line in fig.axes[0].get_lines()
                if (line.get_gid() or "").startswith("density-")
            ]
        )
        == 7
    )
    assert fig.axes[1].get_ylabel() == "epoch"


def test_density_figures_name_their_floor_and_the_combined_one_has_a_title(records):
    fig = hessian.plot_density(records)
    texts = [
        t.get_text()
        for legend in fig.legends + [fig.axes[0].get_legend()]
        if legend
        for t in legend.get_texts()
    ]
    assert any("floor" in t and "peak" in t for t in texts)
    assert fig.axes[0].get_title().startswith("Hessian spectral density (SLQ), 7 checkpoints")
    single = hessian.plot_density(records[:1])
    assert any("floor" in t.get_text() for t in single.axes[0].get_legend().get_texts())


def test_without_epochs_the_top_eigenvalues_are_drawn_against_their_index(records):
    fig = hessian.plot_top_eigenvalues(records[:2])
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_allclose(line.get_ydata(), records[0].eigenvalues)


def _one_per_checkpoint(count: int, k: int):
    from landscape.plot.results import HessianRecord, Meta

    rng = np.random.default_rng(0)
    return [
        HessianRecord(
            f"arm{i // 3}-s{i % 3}",
            np.sort(40 + 10 * rng.random(k))[::-1],
            None,
            None,
            None,
            None,
            Meta(epoch=200, phase="sam" if i >= 3 else "sgd"),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("count, k", [(21, 1), (12, 3), (3, 1), (2, 5)])
def test_top_eigenvalues_axis_spans_the_values_and_the_legend_leaves_the_data_free(
    count, k, tmp_path
):
    import warnings

    records = _one_per_checkpoint(count, k)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "constrained_layout not applied"
        fig = hessian.plot_top_eigenvalues(records)
        style.save_figure(fig, tmp_path / "topk", ["png"], 60)
    ax = fig.axes[0]
    values = np.concatenate([r.eigenvalues for r in records])
    span = values.max() - values.min()
    axis = ax.get_ylim() if "eigenvalue" in ax.get_ylabel() else ax.get_xlim()
    assert axis[0] <= values.min() and axis[1] >= values.max()
    assert axis[1] - axis[0] < 2 * span  # not a range around a single index
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the constrained layout, as in the saved file
    renderer = canvas.get_renderer()
    legends = fig.legends + ([ax.get_legend()] if ax.get_legend() else [])
    assert legends and not any(
        legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
        for legend in legends
    )
