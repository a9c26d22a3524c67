"""1D loss slices: loss and accuracy, train and test, along one direction (Goodfellow et al., 2015;
Li et al., 2018, filter-normalised directions).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from landscape.plot import style
from landscape.plot.results import SurfaceRecord

SPLIT_STYLE = {"train": "-", "test": "--"}


def mark_missing_1d(ax, x: np.ndarray, done: np.ndarray) -> None:
    """Grey bands over the points not computed yet, so a gap never reads as a smooth curve."""
    if np.all(done):
        return
    step = np.min(np.diff(x)) / 2 if x.size > 1 else 0.5
    for i in np.flatnonzero(~done):
        ax.axvspan(
            x[i] - step,
            x[i] + step,
            color=style.MISSING_COLOR,
            alpha=0.35,
            linewidth=0,
            gid="missing",
        )


def _title(surface: SurfaceRecord) -> str:
    title = surface.name
    if surface.meta.checkpoint_name:
        title = f"{surface.meta.checkpoint_name}: {title}"
    if surface.is_partial:
        title += f" (partial: {int(surface.done.sum())}/{surface.done.size} points)"
    return title


@style.styled
def plot_slice_1d(surface: SurfaceRecord) -> Figure:
    """Two panels sharing the x axis: loss (log scale when it spans decades) and accuracy."""
    fig = style.new_figure(style.COLUMN_WIDTH, 3.6)
    ax_loss, ax_acc = fig.subplots(2, 1, sharex=True)
    for ax, quantity in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split in ("train", "test"):
            values = surface.metrics.get(f"{split}_{quantity}")
            if values is None:
                continue
            if quantity == "acc":
                values = 100 * values
            ax.plot(
                surface.x,
                values,
                SPLIT_STYLE[split],
                color=style.PALETTE[0] if split == "train" else style.PALETTE[1],
                marker="o" if surface.x.size <= 25 else None,
                markersize=2.5,
                label=split,
            )
        mark_missing_1d(ax, surface.x, surface.done)
        ax.axvline(0.0, color=style.SWITCH_COLOR, linewidth=0.6, alpha=0.6)
    losses = np.concatenate(
        [v[np.isfinite(v)] for k, v in surface.metrics.items() if k.endswith("_loss")]
        or [np.empty(0)]
    )
    if losses.size and losses.min() > 0 and losses.max() / losses.min() > 50:
        style.log_scale(ax_loss)
    ax_loss.set_ylabel("loss")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_xlabel(surface.x_label)
    ax_acc.xaxis.set_major_locator(MaxNLocator(nbins=6))  # "−0.75" labels need room at column width
    handles, labels = ax_loss.get_legend_handles_labels()
    if not surface.done.all():
        from matplotlib.patches import Patch

        handles.append(Patch(color=style.MISSING_COLOR, alpha=0.5, label="not computed"))
        labels.append("not computed")
    ax_loss.legend(handles, labels, loc="best")
    if not ax_acc.has_data():
        ax_acc.set_visible(False)
    ax_loss.set_title(_title(surface))
    return fig
