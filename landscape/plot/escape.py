"""Escape from a minimum under SAM (Zhou et al., ICLR 2025): distance from the starting point,
training loss and the top eigenvalue against SAM step. The distance grows exponentially at
first, so it is drawn on a log axis where that phase is a straight line.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from landscape.plot import style
from landscape.plot.results import Escape

PANELS = (
    ("distance", "distance ‖θ − θ$_0$‖"),
    ("train_loss", "train loss"),
    ("eigenvalue", "top eigenvalue λ$_1$"),
)


def _parameters(escape: Escape) -> str:
    parts = []
    for key, symbol in (("rho", "ρ"), ("lr", "lr")):
        value = escape.attrs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{symbol}={value:g}")
    if escape.attrs.get("unnormalized") in (True, 1, "true", "True"):
        parts.append("unnormalized")
    return ", ".join(parts)


@style.styled
def plot_escape(escape: Escape) -> Figure:
    panels = [
        (k, label)
        for k, label in PANELS
        if k in escape.series and np.isfinite(escape.series[k]).any()
    ]
    fig = style.new_figure(style.COLUMN_WIDTH, 1.0 + 1.25 * max(len(panels), 1))
    axes = np.atleast_1d(fig.subplots(max(len(panels), 1), 1, sharex=True))
    for ax, (key, label) in zip(axes, panels):
        values = escape.series[key]
        finite = np.isfinite(values)
        log = key == "distance" and (values[finite] > 0).sum() >= 2
        if log:  # the start (distance 0) has no place on a log axis
            finite &= values > 0
        sparse = finite.sum() < 0.5 * finite.size  # eigenvalues computed every few steps only
        ax.plot(
            escape.step[finite],
            values[finite],
            "o-" if sparse else "-",
            markersize=3,
            color=style.PALETTE[{"distance": 1, "train_loss": 0, "eigenvalue": 2}[key]],
            gid=key,
        )
        if log:
            style.log_scale(ax)
            if escape.growth_rate is not None:
                ax.text(
                    0.98,
                    0.05,
                    f"growth rate {escape.growth_rate:.3g} / step",
                    transform=ax.transAxes,
                    ha="right",
                    va="bottom",
                    fontsize=6.5,
                    gid="growth-rate",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7", "lw": 0.5},
                )
        ax.set_ylabel(label)
    axes[-1].set_xlabel("SAM step")
    title = escape.meta.checkpoint_name or escape.name
    params = _parameters(escape)
    axes[0].set_title(f"escape from {title}" + (f" ({params})" if params else ""))
    return fig
