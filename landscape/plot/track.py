"""Sharpness along training (``track/<name>/``, :mod:`landscape.results.track`): each measure
against the training step, one panel per measure. The lambda1 panel carries the line 2/lr
where the learning rate was recorded: for gradient descent on a quadratic, a step is stable
only while lambda1 < 2/lr, and full-batch training hovers at that edge (Cohen et al., "Gradient
descent on neural networks typically occurs at the edge of stability", ICLR 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
from matplotlib.figure import Figure

from landscape.plot import style
from landscape.plot.results import Meta, read_meta
from landscape.results.track import TrackResult

PANELS = (
    ("lambda1", "top eigenvalue λ$_1$"),
    ("top_k", "top eigenvalues"),
    ("trace", "trace tr H"),
    ("worst_case", "worst-case sharpness"),
    ("gradient_norm", "gradient norm"),
    ("loss", "loss (tracking examples)"),
)


@dataclass
class Track:
    """The figure's view of one ``track/<name>`` group."""

    name: str
    result: TrackResult
    meta: Meta

    def panels(self) -> list[tuple[str, str]]:
        series = self.result.series
        return [(k, label) for k, label in PANELS if k in series and np.isfinite(series[k]).any()]


def read_track(group: h5py.Group) -> Track | None:
    """A track group with at least one measured value (else None: nothing to draw)."""
    track = Track(group.name.split("/")[-1], TrackResult.read(group), read_meta(group))
    return track if track.result.steps.size and track.panels() else None


def stability_line(result: TrackResult) -> np.ndarray | None:
    """2/lr at each measured step (NaN where the learning rate is unknown), or None."""
    lr = result.series.get("lr")
    if lr is None or not (np.isfinite(lr) & (lr > 0)).any():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lr > 0, 2.0 / lr, np.nan)


@style.styled
def plot_track(track: Track) -> Figure:
    panels = track.panels()
    steps = track.result.steps
    fig = style.new_figure(style.COLUMN_WIDTH, 1.0 + 1.25 * len(panels))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    for i, (ax, (key, label)) in enumerate(zip(axes, panels)):
        values = track.result.series[key]
        marker = "o-" if steps.size <= 40 else "-"
        if values.ndim == 2:
            for j in range(values.shape[1]):
                ax.plot(steps, values[:, j], marker, markersize=2.5, gid=f"{key}-{j + 1}")
        else:
            finite = np.isfinite(values)
            ax.plot(
                steps[finite],
                values[finite],
                marker,
                markersize=3,
                color=style.PALETTE[i % len(style.PALETTE)],
                gid=key,
            )
        line = stability_line(track.result) if key == "lambda1" else None
        if line is not None:
            ax.plot(steps, line, "--", color="0.4", lw=1.0, label="2 / lr", gid="two-over-lr")
            ax.legend(loc="best", fontsize=6.5)
        ax.set_ylabel(label)
    axes[-1].set_xlabel("training step")
    axes[0].set_title(f"sharpness along training: {track.name}")
    return fig


def _last_finite(values: np.ndarray | None) -> float | None:
    if values is None or values.ndim != 1:
        return None
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None


TABLE_HEADERS = ["track", "steps", "λ1 (last)", "λ1 (max)", "2 / lr (last)", "trace (last)"]


def table_row(label: str, track: Track, fmt) -> list[str]:
    """The report's row of one track: what was measured when, and the last values."""
    result = track.result
    lambda1 = result.series.get("lambda1")
    peak = float(np.nanmax(lambda1)) if lambda1 is not None and np.isfinite(lambda1).any() else None
    line = stability_line(result)
    steps = result.steps
    return [
        f"{label}: {track.name}",
        f"{steps[0]}–{steps[-1]} ({steps.size})",
        fmt(_last_finite(lambda1)),
        fmt(peak),
        fmt(_last_finite(line)),
        fmt(_last_finite(result.series.get("trace"))),
    ]
