"""Several results on one axis, a legend naming each: e.g. SGD vs late-SAM vs full-SAM slices,
interpolation curves, sharpness during training, training curves, escape distances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from landscape.plot import style
from landscape.plot.hessian import plot_hessian_vs_epoch
from landscape.plot.results import (
    Escape,
    HessianRecord,
    InterpolationRecord,
    SurfaceRecord,
    TrainingLog,
)


def _color(i: int) -> str:
    return style.PALETTE[i % len(style.PALETTE)]


def _two_panels(height: float = 3.6):
    fig = style.new_figure(style.COLUMN_WIDTH, height)
    top, bottom = fig.subplots(2, 1, sharex=True)
    return fig, top, bottom


def _finish(fig, top, bottom, xlabel: str, top_label: str, bottom_label: str) -> Figure:
    top.set_ylabel(top_label)
    bottom.set_ylabel(bottom_label)
    bottom.set_xlabel(xlabel)
    if not bottom.has_data():
        bottom.set_visible(False)
        top.set_xlabel(xlabel)
        top.xaxis.set_tick_params(labelbottom=True)
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 3))
    return fig


def _log_if_wide(ax) -> None:
    values = np.concatenate([line.get_ydata() for line in ax.get_lines()] or [np.empty(0)]).astype(
        float
    )
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0 and values.max() / values.min() > 50:
        style.log_scale(ax)


@style.styled
def plot_compare_slices(items: Sequence[tuple[str, SurfaceRecord]]) -> Figure:
    """1D slices: train loss (top) and test accuracy (bottom), one colour per result."""
    fig, top, bottom = _two_panels()
    for i, (label, surface) in enumerate(items):
        loss = surface.metrics.get("train_loss", surface.metrics.get("test_loss"))
        if loss is not None:
            top.plot(surface.x, loss, color=_color(i), label=label)
        if "test_acc" in surface.metrics:
            bottom.plot(surface.x, 100 * surface.metrics["test_acc"], color=_color(i))
    _log_if_wide(top)
    bottom.xaxis.set_major_locator(MaxNLocator(nbins=6))
    return _finish(fig, top, bottom, "step along direction (α)", "train loss", "test accuracy (%)")


@style.styled
def plot_compare_interpolations(items: Sequence[tuple[str, InterpolationRecord]]) -> Figure:
    """Interpolation curves: train loss (top) and test error (bottom) against α."""
    fig, top, bottom = _two_panels()
    for i, (label, interp) in enumerate(items):
        loss = interp.metrics.get("train_loss", interp.metrics.get("test_loss"))
        if loss is not None:
            top.plot(interp.alpha, loss, color=_color(i), label=label)
        if "test_acc" in interp.metrics:
            bottom.plot(interp.alpha, 100 * (1 - interp.metrics["test_acc"]), color=_color(i))
    for ax in (top, bottom):
        for a in (0.0, 1.0):
            ax.axvline(a, color=style.SWITCH_COLOR, linewidth=0.7, alpha=0.7, zorder=1)
    return _finish(fig, top, bottom, "interpolation coefficient α", "train loss", "test error (%)")


def plot_compare_hessian(items: Sequence[tuple[str, Sequence[HessianRecord]]]) -> Figure:
    """λ1..λk and trace against epoch for several runs (one colour each, switches marked)."""
    runs = {
        label: sorted([r for r in records if r.meta.epoch is not None], key=lambda r: r.meta.epoch)
        for label, records in items
    }
    return plot_hessian_vs_epoch({k: v for k, v in runs.items() if v})


@style.styled
def plot_compare_training(logs: Sequence[tuple[str, TrainingLog]]) -> Figure:
    """Train loss (top) and test accuracy (bottom) against epoch; each run's switch marked."""
    fig, top, bottom = _two_panels()
    for i, (label, log) in enumerate(logs):
        if "train_loss" in log.columns:
            top.plot(log.epoch, log.columns["train_loss"], color=_color(i), label=label)
        if "test_acc" in log.columns:
            bottom.plot(log.epoch, 100 * log.columns["test_acc"], color=_color(i))
        switch = log.switch_epoch()
        if switch is not None:
            for ax in (top, bottom):
                ax.axvline(switch, color=_color(i), linestyle="--", linewidth=0.9, gid="switch")
    _log_if_wide(top)
    fig = _finish(fig, top, bottom, "epoch", "train loss", "test accuracy (%)")
    if any(log.switch_epoch() is not None for _, log in logs):
        top.set_title("dashed: SGD→SAM switch of the run in that colour", fontsize=6.5)
    return fig


@style.styled
def plot_compare_escape(items: Sequence[tuple[str, Escape]]) -> Figure:
    """Distance from the starting minimum against SAM step, log scale."""
    fig = style.new_figure(style.COLUMN_WIDTH)
    ax = fig.add_subplot()
    for i, (label, escape) in enumerate(items):
        distance = escape.series.get("distance")
        if distance is not None:
            keep = np.isfinite(distance) & (distance > 0)  # distance 0 at the start: off a log axis
            ax.plot(escape.step[keep], distance[keep], color=_color(i), label=label)
    if ax.has_data():
        style.log_scale(ax)
    ax.set_xlabel("SAM step")
    ax.set_ylabel("distance ‖θ − θ$_0$‖")
    ax.legend()
    return fig
