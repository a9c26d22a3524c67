"""Interpolation curves: endpoints named after the checkpoints, barriers annotated."""

import numpy as np
import pytest

from landscape.plot import interpolation


def test_chord_excess_finds_the_peak_above_the_straight_line():
    alpha = np.linspace(-0.5, 1.5, 41)
    values = 1.0 + alpha + 0.8 * np.sin(np.pi * alpha) * ((alpha >= 0) & (alpha <= 1))
    a_star, top, chord, excess = interpolation.chord_excess(alpha, values)
    assert (
        a_star == pytest.approx(0.5)
        and excess == pytest.approx(0.8)
        and chord == pytest.approx(1.5)
    )


def test_loss_and_error_curves_hold_the_file_values(loaded):
    interp = loaded["interpolation"].interpolations[0]
    fig = interpolation.plot_interpolation(interp)
    ax_loss, ax_err = fig.axes[:2]
    train = next(line for line in ax_loss.get_lines() if line.get_label() == "train")
    np.testing.assert_allclose(train.get_xdata(), interp.alpha)
    np.testing.assert_allclose(train.get_ydata(), interp.metrics["train_loss"])
    err = next(line for line in ax_err.get_lines() if line.get_label() == "test")
    np.testing.assert_allclose(err.get_ydata(), 100 * (1 - interp.metrics["test_acc"]))
    assert ax_err.get_ylabel() == "error (%)" and "α" in ax_err.get_xlabel()


def test_endpoints_are_marked_and_labelled_with_the_checkpoints(loaded):
    fig = interpolation.plot_interpolation(loaded["interpolation"].interpolations[0])
    ax_loss = fig.axes[0]
    marks = sorted(
        line.get_xdata()[0] for line in ax_loss.get_lines() if line.get_gid() == "endpoint"
    )
    assert marks == [0.0, 1.0]
    top = next(a for a in ax_loss.child_axes)
    labels = [t.get_text() for t in top.get_xticklabels()]
    assert labels == ["α=0: epoch-080-sgd", "α=1: epoch-100-sam"]


def _barrier_labels(fig):
    return [t.get_text() for t in fig.legends[0].get_texts() if "barrier" in t.get_text()]


def test_barriers_from_the_file_are_named_in_the_legend_and_the_arrow_marks_the_peak(loaded):
    interp = loaded["interpolation"].interpolations[0]
    fig = interpolation.plot_interpolation(interp)
    labels = _barrier_labels(fig)
    assert labels[0] == "train loss barrier: Entezari 0.388, Frankle 0.432"
    assert (
        labels[2] == "train error barrier (%): Entezari 5.47, Frankle 6.12"
    )  # in %, like the axis
    arrow = next(t for t in fig.axes[0].texts if t.get_gid() == "barrier-train")
    assert arrow.xy[0] == pytest.approx(0.5, abs=0.06)


def test_every_split_gets_its_barrier_and_the_dotted_chord_is_drawn_above_the_curves(loaded):
    interp = loaded["interpolation"].interpolations[0]
    fig = interpolation.plot_interpolation(interp)
    labels = _barrier_labels(fig)
    assert [label.split(" barrier")[0] for label in labels] == [
        "train loss",
        "test loss",
        "train error",
        "test error",
    ]
    for ax in fig.axes[:2]:
        curves = [line for line in ax.get_lines() if line.get_gid() is None]
        for split in ("train", "test"):
            chord = next(line for line in ax.get_lines() if line.get_gid() == f"chord-{split}")
            assert chord.get_linestyle() == ":" and chord.get_zorder() > max(
                c.get_zorder() for c in curves
            )


def test_barrier_attrs_without_a_split_are_read_too(loaded):
    interp = loaded["interpolation"].interpolations[0]
    plain = type(interp)(**{**interp.__dict__, "barriers": {"barrier_loss_entezari": 0.1234}})
    fig = interpolation.plot_interpolation(plain)
    assert _barrier_labels(fig)[0] == "train loss barrier: Entezari 0.123"


def test_a_polyline_labels_every_checkpoint_and_annotates_the_highest_segment(build, tmp_path):
    from landscape.plot import results

    path = build.write_result_file(tmp_path / "poly.h5", build.write_polyline)
    interp = results.read_result_file(path).interpolations[0]
    fig = interpolation.plot_interpolation(interp)
    top = fig.axes[0].child_axes[0]
    assert [t.get_text() for t in top.get_xticklabels()] == [
        "epoch-040-sgd",
        "epoch-060-sgd",
        "epoch-080-sgd",
    ]
    arrow = next(t for t in fig.axes[0].texts if t.get_gid() == "barrier-train")
    assert 1.0 < arrow.xy[0] < 2.0  # the second segment's barrier is twice as high
    missing = [p for p in fig.axes[0].patches if p.get_gid() == "missing"]
    assert len(missing) == 2
    assert "not computed (2/21)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(fig.axes) == 1  # no accuracy in the file: no error panel


def test_without_barrier_attrs_the_barrier_is_computed_from_the_curve(loaded):
    interp = loaded["interpolation"].interpolations[0]
    bare = type(interp)(**{**interp.__dict__, "barriers": {}})
    fig = interpolation.plot_interpolation(bare)
    assert _barrier_labels(fig)[0].endswith("(from curve)")
