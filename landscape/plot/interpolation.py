"""Linear interpolation between two checkpoints (Goodfellow et al., 2015): loss and error
against α for θ(α) = (1 − α)·θ_a + α·θ_b, with the barrier annotated.

Barrier heights (attrs of the result group; names in PLOT_CONTRACT.md):
- Frankle et al. (2020), "Linear mode connectivity and the lottery ticket hypothesis":
  max_α E(α) − ½ (E(0) + E(1)).
- Entezari et al. (2022), "The role of permutation invariance in linear mode connectivity":
  max_α [L(α) − ((1 − α) L(0) + α L(1))], the largest excess over the straight chord.
When the file carries no barrier attrs the Entezari barrier is computed from the curve.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from landscape.plot import style
from landscape.plot.results import InterpolationRecord

SPLIT_STYLE = {"train": "-", "test": "--"}


def chord_excess(alpha: np.ndarray, values: np.ndarray) -> tuple[float, float, float, float] | None:
    """(α*, value at α*, chord at α*, excess): the largest excess over the straight chord.

    For a polyline (checkpoint k at α = k) each segment [k, k + 1] has its own chord and the
    segment with the largest excess wins, as in the producer's ``barrier_*`` attrs.
    """
    best = None
    finite = np.isfinite(values)
    for k in range(int(np.floor(np.nanmax(alpha))) if alpha.size else 0):
        inside = (alpha >= k) & (alpha <= k + 1) & finite
        if inside.sum() < 2 or not (
            np.isclose(alpha[inside], k).any() and np.isclose(alpha[inside], k + 1).any()
        ):
            continue
        al, vals = alpha[inside], values[inside]
        v0, v1 = vals[np.isclose(al, k)][0], vals[np.isclose(al, k + 1)][0]
        chord = v0 + (al - k) * (v1 - v0)
        i = int(np.argmax(vals - chord))
        found = (float(al[i]), float(vals[i]), float(chord[i]), float(vals[i] - chord[i]))
        if best is None or found[3] > best[3]:
            best = found
    return best


def barrier_value(
    interp: InterpolationRecord, split: str, quantity: str, method: str
) -> float | None:
    """``barrier_<split>_<quantity>_<method>`` (as ``landscape interpolate`` writes), else the
    split-less ``barrier_<quantity>_<method>``."""
    for key in (f"barrier_{split}_{quantity}_{method}", f"barrier_{quantity}_{method}"):
        if key in interp.barriers:
            return interp.barriers[key]
    return None


def _annotate_barrier(
    ax,
    interp: InterpolationRecord,
    values: np.ndarray,
    quantity: str,
    scale: float,
    split: str,
    color: str,
) -> None:
    """Chord, a double arrow at the largest excess over it, and the barrier heights in the legend
    (the legend finds a free corner; text next to the arrow would sit on the curves). The chord
    is drawn above the curves, so the dotted line of the legend is always visible in the plot,
    also when the barrier is zero and the chord lies on the curve."""
    found = chord_excess(interp.alpha, values)
    if found is None:
        return
    a_star, top, chord_at, excess = found
    ends = np.arange(len(interp.checkpoint_names))
    ends = ends[ends <= np.nanmax(interp.alpha) + 1e-9]
    at_ends = [
        values[np.isclose(interp.alpha, k)][0] if np.isclose(interp.alpha, k).any() else np.nan
        for k in ends
    ]
    parts = []
    for method in ("entezari", "frankle"):
        value = barrier_value(interp, split, quantity, method)
        if value is not None:
            parts.append(f"{method.capitalize()} {value * scale:.3g}")
    if not parts:
        parts.append(f"{excess:.3g} (from curve)")
    unit = " (%)" if quantity == "error" else ""
    ax.plot(
        ends,
        at_ends,
        ":",
        color=color,
        linewidth=1.3,
        zorder=2.5,
        gid=f"chord-{split}",
        label=f"{split} {quantity} barrier{unit}: " + ", ".join(parts),
    )
    if excess > 0:
        ax.annotate(
            "",
            xy=(a_star, top),
            xytext=(a_star, chord_at),
            gid=f"barrier-{split}",
            arrowprops={
                "arrowstyle": "<->",
                "color": color,
                "linewidth": 0.8,
                "shrinkA": 0,
                "shrinkB": 0,
            },
        )


def _mark_endpoints(ax_top, axes, interp: InterpolationRecord) -> None:
    names = interp.checkpoint_names
    ticks = [float(k) for k in range(len(names)) if k <= np.nanmax(interp.alpha) + 1e-9]
    for ax in axes:
        for a in ticks:
            ax.axvline(
                a, color=style.SWITCH_COLOR, linewidth=0.7, alpha=0.7, zorder=1, gid="endpoint"
            )
    top = ax_top.secondary_xaxis("top")
    labels = [f"α={k:g}: {names[int(k)]}" if len(ticks) == 2 else names[int(k)] for k in ticks]
    top.set_xticks(ticks, labels)
    top.tick_params(labelsize=6.5, length=2)
    if len(ticks) > 2:
        for label in top.get_xticklabels():
            label.set_rotation(20)
            label.set_horizontalalignment("left")
        return
    lo, hi = interp.alpha.min(), interp.alpha.max()
    tick_labels = top.get_xticklabels()
    if lo >= ticks[0] - 0.05:  # endpoints at the frame: keep the labels inside the figure width
        tick_labels[0].set_horizontalalignment("left")
    if hi <= ticks[-1] + 0.05:
        tick_labels[-1].set_horizontalalignment("right")


def _mark_missing(ax, interp: InterpolationRecord) -> None:
    if interp.done is None or interp.done.all():
        return
    from landscape.plot.surface1d import mark_missing_1d

    mark_missing_1d(ax, interp.alpha, interp.done)


@style.styled
def plot_interpolation(interp: InterpolationRecord) -> Figure:
    """Loss (top) and error in % (bottom) against α, endpoints labelled, barriers annotated."""
    has_acc = any(k.endswith("_acc") for k in interp.metrics)
    fig = style.new_figure(style.COLUMN_WIDTH, 3.8 if has_acc else 2.6)
    axes = list(np.atleast_1d(fig.subplots(2 if has_acc else 1, 1, sharex=True)))
    ax_loss, ax_err = axes[0], axes[-1]
    for split, color in (("train", style.PALETTE[0]), ("test", style.PALETTE[1])):
        if f"{split}_loss" in interp.metrics:
            ax_loss.plot(
                interp.alpha,
                interp.metrics[f"{split}_loss"],
                SPLIT_STYLE[split],
                color=color,
                label=split,
            )
        if f"{split}_acc" in interp.metrics:
            ax_err.plot(
                interp.alpha,
                100 * (1 - interp.metrics[f"{split}_acc"]),
                SPLIT_STYLE[split],
                color=color,
                label=split,
            )
    for split, color in (
        ("train", style.PALETTE[0]),
        ("test", style.PALETTE[1]),
    ):  # every split's barrier
        if f"{split}_loss" in interp.metrics:
            _annotate_barrier(
                ax_loss, interp, interp.metrics[f"{split}_loss"], "loss", 1.0, split, color
            )
        if f"{split}_acc" in interp.metrics:
            _annotate_barrier(
                ax_err,
                interp,
                100 * (1 - interp.metrics[f"{split}_acc"]),
                "error",
                100.0,
                split,
                color,
            )
    ax_loss.set_ylabel("loss")
    if has_acc:
        ax_err.set_ylabel("error (%)")
    ax_err.set_xlabel(
        interp.alpha_label
        if interp.alpha_label and interp.alpha_label != "α"
        else "interpolation coefficient α"
    )
    for ax in axes:
        _mark_missing(ax, interp)

    # One legend below the panels (nothing in it can cover a curve or the barrier arrow):
    # curves in the first column, barrier heights in the second.
    entries = [(h, label) for ax in axes for h, label in zip(*ax.get_legend_handles_labels())]
    curves = list(dict((label, h) for h, label in entries if "barrier" not in label).items())
    barriers = [(label, h) for h, label in entries if "barrier" in label]
    if interp.done is not None and not interp.done.all():
        curves.append(
            (
                f"not computed ({int((~interp.done).sum())}/{interp.done.size})",
                Patch(color=style.MISSING_COLOR, alpha=0.5),
            )
        )
    if barriers and len(curves) < len(barriers):
        curves += [("", Line2D([], [], linestyle=""))] * (len(barriers) - len(curves))
    ordered = curves + barriers
    fig.legend(
        [h for _, h in ordered],
        [label for label, _ in ordered],
        loc="outside lower center",
        ncols=2 if barriers else len(curves),
        fontsize=6.5,
        columnspacing=1.0,
        handlelength=1.6,
    )
    _mark_endpoints(ax_loss, axes, interp)
    return fig
