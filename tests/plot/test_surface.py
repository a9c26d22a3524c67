"""1D slices and 2D surfaces: the right data on the right axes, missing points marked."""

import dataclasses

import h5py
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from mpl_toolkits.mplot3d import Axes3D
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from landscape.plot import results, style, surface1d, surface2d


def _gid(fig, gid):
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def test_slice_1d_draws_train_and_test_loss_and_accuracy_in_percent(loaded):
    surface = loaded["surface1d"].surfaces[0]
    fig = surface1d.plot_slice_1d(surface)
    ax_loss, ax_acc = fig.axes[:2]
    lines = {
        line.get_label(): line
        for line in ax_loss.get_lines()
        if not line.get_label().startswith("_")
    }
    assert set(lines) == {"train", "test"}
    np.testing.assert_allclose(lines["train"].get_ydata(), surface.metrics["train_loss"])
    acc = [line for line in ax_acc.get_lines() if line.get_label() == "train"][0]
    np.testing.assert_allclose(acc.get_ydata(), 100 * surface.metrics["train_acc"])
    assert ax_loss.get_ylabel() == "loss" and ax_acc.get_ylabel() == "accuracy (%)"
    assert "α" in ax_acc.get_xlabel()
    assert not _gid(fig, "missing")


def test_slice_1d_marks_points_not_done_and_says_partial(build, tmp_path):
    path = build.write_result_file(tmp_path / "p.h5", build.write_surface_1d)
    with h5py.File(path, "r+") as f:
        f["surface/random_1d/done"][15:] = False
        f["surface/random_1d/train_loss"][15:] = np.nan
    fig = surface1d.plot_slice_1d(results.read_result_file(path).surfaces[0])
    assert len(_gid(fig, "missing")) == 2 * 6  # six points, in both panels
    assert "partial: 15/21" in fig.axes[0].get_title()


@pytest.mark.parametrize("metric, log", [("train_loss", True), ("test_acc", False)])
def test_levels_are_log_spaced_for_losses_and_linear_for_accuracy(loaded, metric, log):
    surface = loaded["surface2d"].surfaces[0]
    values = surface2d._values(surface, metric)
    levels, _, is_log = surface2d.levels_for(values, metric)
    assert is_log is log
    steps = np.diff(np.log(levels)) if log else np.diff(levels)
    np.testing.assert_allclose(steps, steps[0])
    assert levels[0] == pytest.approx(np.nanmin(values)) and levels[-1] == pytest.approx(
        np.nanmax(values)
    )


def test_non_square_contour_spans_both_axes_without_transposing(loaded):
    surface = loaded["surface2d"].surfaces[0]
    fig = surface2d.plot_contour(surface)
    ax = fig.axes[0]
    assert ax.get_xlim() == (-1.0, 1.0) and ax.get_ylim() == (-0.5, 0.5)
    # The fixture's loss is 8x steeper along y: every contour is wider (in x) than tall (in y).
    contour = next(c for c in ax.collections if hasattr(c, "levels"))
    rings = [
        p.vertices
        for p in contour.get_paths()
        if len(p.vertices) > 10 and np.ptp(p.vertices[:, 1]) < 0.9
    ]
    assert rings
    for v in rings:
        assert np.ptp(v[:, 0]) > np.ptp(v[:, 1])
    assert ax.get_xlabel() == "direction 1 (α)" and ax.get_ylabel() == "direction 2 (β)"


@pytest.mark.parametrize("metric", ["train_loss", "test_acc"])
def test_contour_lines_sit_on_round_values_each_labelled_with_a_colour_bar(loaded, metric):
    fig = surface2d.plot_contour(loaded["surface2d"].surfaces[0], metric)
    ax, bar_ax = fig.axes[0], fig.axes[1]
    contour = next(c for c in ax.collections if hasattr(c, "levels"))
    levels = np.asarray(contour.levels)
    assert len(levels) >= 5
    if metric.endswith("_loss"):  # 1-2-5 per decade: 0.01, 0.02, 0.05, 0.1, ...
        mantissas = levels / 10.0 ** np.floor(np.log10(levels) + 1e-9)
        assert set(np.round(mantissas, 6)) <= {1.0, 1.5, 2.0, 3.0, 5.0, 7.0}
    else:  # round linear steps
        np.testing.assert_allclose(np.diff(levels), np.diff(levels)[0])
        assert all(float(f"{v:.3g}") == pytest.approx(v) for v in levels)
    labels = [t.get_text() for t in ax.texts]
    assert labels and all(len(text) <= 5 for text in labels)  # "0.05", "2", not "0.0361"
    assert bar_ax.get_ylabel() == surface2d.QUANTITY_LABEL[metric]


def test_partial_surface_marks_missing_cells_in_every_2d_figure(loaded):
    surface = loaded["surface2d"].surfaces[0]
    for plot in (surface2d.plot_contour, surface2d.plot_filled):
        fig = plot(surface)
        assert _gid(fig, "missing"), plot.__name__
        assert "not computed" in [t.get_text() for t in fig.legends[0].get_texts()]
        assert "partial: 126/165" in fig.axes[0].get_title()


def test_filled_map_has_a_log_colour_bar_labelled_with_the_quantity(loaded):
    fig = surface2d.plot_filled(loaded["surface2d"].surfaces[0], "train_loss")
    bar_ax = fig.axes[1]
    assert bar_ax.get_ylabel() == "train loss" and bar_ax.get_yscale() == "log"
    filled = next(c for c in fig.axes[0].collections if hasattr(c, "levels"))
    assert filled.get_rasterized()


def test_3d_surface_is_drawn_on_real_3d_axes(loaded, tmp_path, check_png):
    """loss-landscape's Axes3D(fig) draws nothing on current matplotlib; ours must draw."""
    fig = surface2d.plot_surface_3d(loaded["pca"].surfaces[0])
    ax = fig.axes[0]
    assert isinstance(ax, Axes3D)
    assert any(isinstance(c, Poly3DCollection) for c in ax.collections)
    assert "log" in ax.get_zlabel()
    check_png(style.save_figure(fig, tmp_path / "s3d", dpi=60)[0], style.COLUMN_WIDTH, 60)


def test_pca_trajectory_colours_phases_labels_epochs_and_stars_the_switch(loaded):
    surface = loaded["pca"].surfaces[0]
    fig = surface2d.plot_filled(surface)
    ax = fig.axes[0]
    scatter = {c.get_gid(): c for c in ax.collections if isinstance(c, PathCollection)}
    sgd, sam = scatter["trajectory-sgd"], scatter["trajectory-sam"]
    assert len(sgd.get_offsets()) == 8 and len(sam.get_offsets()) == 4
    assert np.allclose(sgd.get_facecolor()[0][:3], np.array([0, 114, 178]) / 255)
    switch = scatter["switch"].get_offsets()[0]
    epochs = surface.trajectory.epoch.tolist()
    i = epochs.index(80)
    np.testing.assert_allclose(switch, [surface.trajectory.x[i], surface.trajectory.y[i]])
    labels = [t.get_text() for t in ax.texts if t.get_gid() == "epoch-label"]
    assert {"10", "100", "80"} <= set(labels) and len(labels) <= surface2d.MAX_EPOCH_LABELS
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"SGD", "SAM", "SGD→SAM"} <= set(legend)


@pytest.mark.parametrize(
    "plot", [surface2d.plot_contour, surface2d.plot_filled], ids=["contour", "filled"]
)
def test_2d_figures_render_to_a_decent_png(loaded, tmp_path, check_png, plot):
    fig = plot(loaded["pca"].surfaces[0])
    check_png(style.save_figure(fig, tmp_path / "f", dpi=60)[0], style.COLUMN_WIDTH, 60)


@pytest.mark.parametrize(
    "plot", [surface2d.plot_contour, surface2d.plot_filled], ids=["contour", "filled"]
)
def test_2d_figures_draw_the_values_they_are_given(loaded, tmp_path, check_png, plot):
    # A figure of other values (the same surface shifted by a third along x) must look
    # different: the pixels come from the data, not only from axes, labels and colour bar.
    surface = loaded["pca"].surfaces[0]
    shift = surface.x.size // 3
    shifted = dataclasses.replace(
        surface, metrics={k: np.roll(v, shift, axis=0) for k, v in surface.metrics.items()}
    )
    images = [
        check_png(style.save_figure(plot(s), tmp_path / name, dpi=60)[0])
        for s, name in ((surface, "a"), (shifted, "b"))
    ]
    assert images[0].shape == images[1].shape
    changed = np.any(np.abs(images[0] - images[1]) > 0.05, axis=-1).mean()
    assert changed > 0.02, changed


def test_a_grid_one_point_wide_is_drawn_as_a_1d_slice(build, tmp_path):
    path = build.write_result_file(
        tmp_path / "row.h5", lambda f: build.write_surface_2d(f, nx=1, ny=7, missing_rows=0)
    )
    surface = results.read_result_file(path).surfaces[0]
    assert surface.ndim == 1 and surface.x.size == 7 and surface.x_label == "direction 2 (β)"


def test_a_surface_with_nothing_done_yet_still_renders_every_2d_figure(build, tmp_path):
    path = build.write_result_file(
        tmp_path / "empty.h5", lambda f: build.write_surface_2d(f, missing_rows=0)
    )
    with h5py.File(path, "r+") as f:
        f["surface/random_2d/done"][...] = False
    surface = results.read_result_file(path).surfaces[0]
    for plot in (surface2d.plot_contour, surface2d.plot_filled, surface2d.plot_surface_3d):
        assert "partial: 0/165" in plot(surface).axes[0].get_title()
