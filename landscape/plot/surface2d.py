"""2D loss surfaces (Li et al., 2018): contour lines on log-spaced levels, a filled map with a
colour bar, a 3D surface, and for PCA planes the optimisation trajectory on top.

Grids may be non-square and partially computed: values are (nx, ny) in 'ij' order, so the
meshes below use ``indexing="ij"`` and never transpose; points not yet done are NaN, drawn as
grey cells labelled "not computed".
"""

from __future__ import annotations

import numpy as np
from matplotlib import colors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from landscape.plot import style
from landscape.plot.results import SurfaceRecord, Trajectory, switch_epoch

QUANTITY_LABEL = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "train_acc": "train accuracy (%)",
    "test_acc": "test accuracy (%)",
}
MAX_EPOCH_LABELS = 9


def _values(surface: SurfaceRecord, metric: str) -> np.ndarray:
    values = surface.metrics[metric]
    return 100 * values if metric.endswith("_acc") else values


def levels_for(
    values: np.ndarray, metric: str, count: int = 14
) -> tuple[np.ndarray, colors.Normalize, bool]:
    """Contour levels and a colour norm: log-spaced for losses that span decades, else linear.

    Losses near a minimum change by orders of magnitude over a few units of distance;
    linear levels would crowd at the rim and leave the basin empty.
    """
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if metric.endswith("_loss"):
        positive = finite[finite > 0]
        if positive.size and positive.max() / positive.min() > 1.5:
            low = float(positive.min())
            return np.geomspace(low, high, count), colors.LogNorm(low, high), True
    if high <= low:
        high = low + (abs(low) * 1e-3 or 1e-3)
    return np.linspace(low, high, count), colors.Normalize(low, high), False


def line_levels(values: np.ndarray, metric: str) -> tuple[np.ndarray, colors.Normalize, bool]:
    """Contour-line levels a reader can read off: 1-2-5 steps per decade for losses that span
    decades (0.01, 0.02, 0.05, 0.1, ...), round linear steps otherwise; every line labelled."""
    levels, norm, log = levels_for(values, metric)
    low, high = float(levels[0]), float(levels[-1])
    if log:
        decades = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
        for mantissas in ((1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)):
            nice = np.array([m * 10.0**d for d in decades for m in mantissas])
            nice = nice[(nice > low) & (nice < high)]
            if nice.size >= 6:
                break
        if nice.size >= 2:
            return nice, norm, True
        return levels, norm, True
    nice = MaxNLocator(nbins=10, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    nice = nice[(nice > low) & (nice < high)]
    return (nice if nice.size >= 2 else levels), norm, False


def _level_label(value: float) -> str:
    return f"{value:g}" if value >= 1e-3 else f"{value:.0e}"


def _mesh(surface: SurfaceRecord) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(surface.x, surface.y, indexing="ij")


def _edges(centres: np.ndarray) -> np.ndarray:
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mids[0]], mids, [2 * centres[-1] - mids[-1]]])


def mark_missing_2d(ax, surface: SurfaceRecord) -> bool:
    """Grey cells where the grid is not computed yet; True if there were any.

    The grey is drawn under the data and grown by one cell, so it reaches exactly to the
    last computed points (contours end there) instead of leaving a white half-cell between.
    """
    missing = ~surface.done
    if not missing.any():
        return False
    grown = missing.copy()
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            grown |= _shift(missing, dx, dy)
    missing = grown
    xe, ye = np.meshgrid(_edges(surface.x), _edges(surface.y), indexing="ij")
    ax.pcolormesh(
        xe,
        ye,
        np.ma.masked_where(~missing, np.ones(missing.shape)),
        cmap=colors.ListedColormap([style.MISSING_COLOR]),
        vmin=0,
        vmax=1,
        shading="flat",
        rasterized=True,
        zorder=0.5,
        gid="missing",
    )
    return True


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(mask)
    nx, ny = mask.shape
    out[max(dx, 0) : nx + min(dx, 0), max(dy, 0) : ny + min(dy, 0)] = mask[
        max(-dx, 0) : nx + min(-dx, 0), max(-dy, 0) : ny + min(-dy, 0)
    ]
    return out


def _label_indices(px: np.ndarray, py: np.ndarray, priority: list[int], ax) -> list[int]:
    """Greedy choice of points to label so that no two labels sit on top of each other."""
    xl, yl = ax.get_xlim(), ax.get_ylim()
    sx, sy = (xl[1] - xl[0]) or 1.0, (yl[1] - yl[0]) or 1.0
    chosen: list[int] = []
    for i in priority:
        if len(chosen) >= MAX_EPOCH_LABELS:
            break
        if all(np.hypot((px[i] - px[j]) / sx, (py[i] - py[j]) / sy) > 0.09 for j in chosen):
            chosen.append(i)
    return chosen


def _include(ax, px: np.ndarray, py: np.ndarray) -> None:
    """Widen the view to the whole path (a grid smaller than the path leaves blank margins)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    fx, fy = np.isfinite(px), np.isfinite(py)
    lo_x, hi_x = min(x0, px[fx].min(initial=x0)), max(x1, px[fx].max(initial=x1))
    lo_y, hi_y = min(y0, py[fy].min(initial=y0)), max(y1, py[fy].max(initial=y1))
    pad_x = 0.04 * (hi_x - lo_x) if (lo_x, hi_x) != (x0, x1) else 0.0
    pad_y = 0.04 * (hi_y - lo_y) if (lo_y, hi_y) != (y0, y1) else 0.0
    ax.set_xlim(lo_x - (pad_x if lo_x < x0 else 0), hi_x + (pad_x if hi_x > x1 else 0))
    ax.set_ylim(lo_y - (pad_y if lo_y < y0 else 0), hi_y + (pad_y if hi_y > y1 else 0))


def overlay_trajectory(ax, trajectory: Trajectory) -> list:
    """Trajectory points coloured by phase, some labelled with their epoch, the switch starred."""
    px, py = trajectory.x, trajectory.y
    order = (
        np.argsort(trajectory.epoch, kind="stable")
        if trajectory.epoch is not None
        else np.arange(px.size)
    )
    px, py = px[order], py[order]
    _include(ax, px, py)
    phases = [trajectory.phase[i] for i in order]
    epochs = trajectory.epoch[order] if trajectory.epoch is not None else None
    ax.plot(px, py, "-", color="white", linewidth=2.2, alpha=0.8, zorder=3)
    ax.plot(px, py, "-", color="black", linewidth=0.8, zorder=3.1)
    handles = []
    for phase in dict.fromkeys(phases):
        idx = [i for i, p in enumerate(phases) if p == phase]
        ax.scatter(
            px[idx],
            py[idx],
            s=14,
            color=style.phase_color(phase),
            edgecolors="white",
            linewidths=0.5,
            zorder=4,
            gid=f"trajectory-{phase}",
        )
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=style.phase_color(phase),
                markeredgecolor="white",
                label=style.phase_label(phase),
            )
        )
    switch_index = None
    if epochs is not None:
        switch = switch_epoch(epochs, phases)
        if switch is not None:
            candidates = [
                i for i, (e, p) in enumerate(zip(epochs, phases)) if p == "sgd" and e == switch
            ]
            switch_index = candidates[-1] if candidates else None
    if switch_index is not None:
        ax.scatter(
            px[switch_index],
            py[switch_index],
            s=90,
            marker="*",
            color="#F0E442",
            edgecolors="black",
            linewidths=0.6,
            zorder=5,
            gid="switch",
        )
        handles.append(
            Line2D(
                [],
                [],
                marker="*",
                linestyle="",
                markersize=8,
                color="#F0E442",
                markeredgecolor="black",
                label="SGD→SAM",
            )
        )
    if epochs is not None:
        priority = [0, px.size - 1] + ([switch_index] if switch_index is not None else [])
        priority += [i for i in range(px.size) if i not in priority]
        for i in _label_indices(px, py, priority, ax):
            if not np.isfinite(epochs[i]):  # a third-party checkpoint without an epoch
                continue
            ax.annotate(
                f"{int(epochs[i])}",
                (px[i], py[i]),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=6,
                zorder=6,
                gid="epoch-label",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
            )
    return handles


def wrap_label(text: str | None, width: int = 32) -> str | None:
    """Long axis labels ("direction 1 (random, filter-normalised)") break before the parenthesis."""
    if text and len(text) > width and " (" in text:
        head, _, tail = text.partition(" (")
        return f"{head}\n({tail}"
    return text


def _decorate(ax, fig, surface: SurfaceRecord, metric: str, handles: list) -> None:
    ax.set_xlabel(wrap_label(surface.x_label, 48))
    ax.set_ylabel(wrap_label(surface.y_label))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    if mark_missing_2d(ax, surface):
        handles = handles + [Patch(color=style.MISSING_COLOR, label="not computed")]
    if surface.trajectory is not None:
        handles = overlay_trajectory(ax, surface.trajectory) + handles
    elif _inside(0.0, surface.x) and _inside(0.0, surface.y):
        ax.plot(
            [0],
            [0],
            marker="*",
            color="white",
            markeredgecolor="black",
            markersize=8,
            linestyle="",
            zorder=5,
        )
        handles = [
            Line2D(
                [],
                [],
                marker="*",
                linestyle="",
                color="white",
                markeredgecolor="black",
                markersize=8,
                label=surface.meta.checkpoint_name or "centre",
            )
        ] + handles
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
    title = QUANTITY_LABEL.get(metric, metric)
    if surface.meta.checkpoint_name:
        title = f"{surface.meta.checkpoint_name}: {title}"
    if surface.is_partial:
        title += f" (partial: {int(surface.done.sum())}/{surface.done.size})"
    ax.set_title(title)
    ax.grid(False)


def _inside(value: float, axis: np.ndarray) -> bool:
    return bool(axis.min() <= value <= axis.max())


@style.styled
def plot_contour(surface: SurfaceRecord, metric: str = "train_loss") -> Figure:
    """Contour lines on round levels (1-2-5 per decade for losses), each labelled with its
    value, and a colour bar that maps line colour to value."""
    fig = style.new_figure(style.COLUMN_WIDTH, 3.3)
    ax = fig.add_subplot()
    X, Y = _mesh(surface)
    Z = _values(surface, metric)
    levels, norm, log = line_levels(Z, metric)
    cmap = style.ACCURACY_CMAP if metric.endswith("_acc") else style.LOSS_CMAP
    if np.isfinite(Z).sum() >= 4 and np.nanmax(Z) > np.nanmin(Z):
        lines = ax.contour(
            X, Y, np.ma.masked_invalid(Z), levels=levels, norm=norm, cmap=cmap, linewidths=0.8
        )
        ax.clabel(lines, lines.levels, fontsize=5.5, fmt=_level_label, inline_spacing=2)
        bar = fig.colorbar(lines, ax=ax, pad=0.02, fraction=0.05)
        bar.set_label(QUANTITY_LABEL.get(metric, metric))
        bar.set_ticks(levels, labels=[_level_label(v) for v in levels])
        bar.minorticks_off()
    ax.set_xlim(surface.x.min(), surface.x.max())
    ax.set_ylim(surface.y.min(), surface.y.max())
    _decorate(ax, fig, surface, metric, [])
    return fig


@style.styled
def plot_filled(surface: SurfaceRecord, metric: str = "train_loss") -> Figure:
    """Filled contours with a colour bar (log colour scale for losses that span decades)."""
    fig = style.new_figure(style.COLUMN_WIDTH, 3.3)
    ax = fig.add_subplot()
    X, Y = _mesh(surface)
    Z = _values(surface, metric)
    levels, norm, log = levels_for(Z, metric, count=24)
    cmap = style.ACCURACY_CMAP if metric.endswith("_acc") else style.LOSS_CMAP
    masked = np.ma.masked_invalid(Z)
    if log:
        masked = np.ma.masked_less_equal(masked, 0)
    # Levels run from the minimum to the maximum exactly (contourf closes the lowest interval
    # at both ends), so nothing falls outside and the bar needs no extension arrows.
    filled = ax.contourf(X, Y, masked, levels=levels, norm=norm, cmap=cmap)
    filled.set_rasterized(True)  # keeps PDF/SVG small: the fill is an image, text stays vector
    bar = fig.colorbar(filled, ax=ax, pad=0.02, fraction=0.05)
    bar.set_label(QUANTITY_LABEL.get(metric, metric))
    if log:
        style.log_scale(bar.ax)
    else:
        bar.set_ticks(MaxNLocator(6).tick_values(levels[0], levels[-1]))
        bar.ax.set_ylim(levels[0], levels[-1])
    ax.set_xlim(surface.x.min(), surface.x.max())
    ax.set_ylim(surface.y.min(), surface.y.max())
    _decorate(ax, fig, surface, metric, [])
    return fig


@style.styled
def plot_surface_3d(surface: SurfaceRecord, metric: str = "train_loss") -> Figure:
    """The surface in 3D; losses spanning decades are drawn as log10 so the basin stays visible."""
    # 3D axes and constrained layout disagree about margins: place the axes by hand.
    fig = style.new_figure(style.COLUMN_WIDTH, 3.2, layout="none")
    ax = fig.add_subplot(projection="3d")
    X, Y = _mesh(surface)
    Z = _values(surface, metric)
    _, _, log = levels_for(Z, metric)
    zlabel = QUANTITY_LABEL.get(metric, metric)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            Z = np.where(Z > 0, np.log10(Z), np.nan)
        zlabel = f"log$_{{10}}$ {zlabel}"
    cmap = style.ACCURACY_CMAP if metric.endswith("_acc") else style.LOSS_CMAP
    finite = Z[np.isfinite(Z)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    ax.plot_surface(
        X,
        Y,
        np.ma.masked_invalid(Z),
        cmap=cmap,
        vmin=low,
        vmax=high,
        rstride=1,
        cstride=1,
        linewidth=0,
        antialiased=False,
        rasterized=True,
    )
    ax.set_zlim(low, high if high > low else low + 1)
    ax.set_xlabel(wrap_label(surface.x_label, 24), labelpad=-4)
    ax.set_ylabel(wrap_label(surface.y_label, 24), labelpad=-4)
    ax.set_zlabel(zlabel, labelpad=-4)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(4))
    ax.tick_params(axis="both", pad=-2, labelsize=6)
    ax.tick_params(axis="z", pad=0, labelsize=6)
    ax.view_init(elev=30, azim=-60)
    title = (
        zlabel
        if not surface.meta.checkpoint_name
        else f"{surface.meta.checkpoint_name}: {QUANTITY_LABEL.get(metric, metric)}"
    )
    if surface.is_partial:
        title += f" (partial: {int(surface.done.sum())}/{surface.done.size})"
    ax.set_title(title, pad=0)
    fig.subplots_adjust(left=0.0, right=0.92, bottom=0.04, top=0.95)
    return fig
