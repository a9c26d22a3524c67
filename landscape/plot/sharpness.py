"""Sharpness measures (``sharpness/<ckpt-stem>/<measure>``) across checkpoints.

Scalar measures get one panel each: against epoch, with phases coloured and the switch marked,
when the checkpoints span several epochs; as points per checkpoint otherwise. A 1-D measure is
drawn against the parameter attr of the same length (e.g. ``rho``), one line per checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from landscape.plot import style
from landscape.plot.results import SharpnessRecord, switch_epoch


def scalar_measures(records: Sequence[SharpnessRecord]) -> list[str]:
    return list(
        dict.fromkeys(
            m for r in records for m, v in r.measures.items() if v.ndim == 0 or v.size == 1
        )
    )


def curve_measures(records: Sequence[SharpnessRecord]) -> list[str]:
    return list(
        dict.fromkeys(
            m for r in records for m, v in r.measures.items() if v.ndim == 1 and v.size > 1
        )
    )


GREEK = {"rho": "ρ", "sigma": "σ", "epsilon": "ε", "alpha": "α"}


# Measure attrs mix parameters with by-products (loss, seconds, stderr): the title names only
# the parameters that define the measure.
TITLE_PARAMETERS = ("rho", "sigma", "epsilon", "m", "steps", "draws")


def _parameter_text(attrs: dict) -> str:
    parts = [
        f"{GREEK.get(k, k)}={attrs[k]:g}"
        for k in TITLE_PARAMETERS
        if isinstance(attrs.get(k), (int, float)) and not isinstance(attrs.get(k), bool)
    ]
    return f" ({', '.join(parts[:3])})" if parts else ""


def _stderr(record: SharpnessRecord, measure: str) -> float:
    value = record.measure_attrs.get(measure, {}).get("stderr")
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else 0.0


@style.styled
def plot_sharpness_measures(records: Sequence[SharpnessRecord]) -> Figure:
    """One small panel per scalar measure."""
    measures = scalar_measures(records)
    cols = min(len(measures), 2)
    rows = math.ceil(len(measures) / cols)
    fig = style.new_figure(
        style.COLUMN_WIDTH if cols == 1 else style.FULL_WIDTH * 0.7, 1.0 + 1.6 * rows
    )
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    ordered = sorted(records, key=lambda r: (r.meta.epoch is None, r.meta.epoch or 0, r.name))
    by_epoch = len({r.meta.epoch for r in ordered if r.meta.epoch is not None}) >= 2 and all(
        r.meta.epoch is not None for r in ordered
    )
    switch = (
        switch_epoch([r.meta.epoch for r in ordered], [r.meta.phase for r in ordered])
        if by_epoch
        else None
    )
    for ax, measure in zip(axes, measures):
        rows_here = [r for r in ordered if measure in r.measures]
        xs = [r.meta.epoch for r in rows_here] if by_epoch else list(range(len(rows_here)))
        ys = [float(np.asarray(r.measures[measure]).reshape(-1)[0]) for r in rows_here]
        errors = [_stderr(r, measure) for r in rows_here]
        ax.errorbar(
            np.asarray(xs, dtype=float),
            np.asarray(ys, dtype=float),
            yerr=errors if any(errors) else None,
            fmt="-",
            color="0.4",
            linewidth=0.8,
            elinewidth=0.7,
            capsize=1.5,
            zorder=2,
            gid=f"measure-{measure}",
        )
        for phase in dict.fromkeys(r.meta.phase for r in rows_here):
            idx = [i for i, r in enumerate(rows_here) if r.meta.phase == phase]
            ax.scatter(
                [xs[i] for i in idx],
                [ys[i] for i in idx],
                color=style.phase_color(phase),
                s=16,
                zorder=3,
                edgecolors="white",
                linewidths=0.4,
                label=style.phase_label(phase),
            )
        if switch is not None:
            style.mark_switch(ax, switch)
        attrs = rows_here[0].measure_attrs.get(measure, {}) if rows_here else {}
        ax.set_title(measure.replace("_", " ") + _parameter_text(attrs))
        if by_epoch:
            ax.set_xlabel("epoch")
        else:
            ax.set_xticks(xs, [r.name for r in rows_here], rotation=30, ha="right")
    for ax in axes[len(measures) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    return fig


@style.styled
def plot_sharpness_curve(records: Sequence[SharpnessRecord], measure: str) -> Figure:
    """A measure computed for several parameter values, one line per checkpoint."""
    fig = style.new_figure(style.COLUMN_WIDTH)
    ax = fig.add_subplot()
    xlabel = "index"
    for i, record in enumerate(r for r in records if measure in r.measures):
        values = record.measures[measure]
        x, xlabel = np.arange(values.size), "index"
        for key, attr in record.measure_attrs.get(measure, {}).items():
            if np.ndim(attr) == 1 and np.size(attr) == values.size:
                x, xlabel = np.asarray(attr, dtype=float), key
                break
        ax.plot(
            x,
            values,
            "o-",
            markersize=3,
            color=style.PALETTE[i % len(style.PALETTE)],
            label=record.name,
        )
    ax.set_xlabel(GREEK.get(xlabel, xlabel))
    ax.set_ylabel(measure.replace("_", " "))
    ax.legend()
    return fig
