"""Hessian figures: top-k eigenvalues and trace against epoch with the SGD→SAM switch marked
(the sharpness-versus-training plot of Zhou et al., ICLR 2025), and the spectral density from
stochastic Lanczos quadrature (Ghorbani et al., 2019) on a log y-axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib import cm, colors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from landscape.plot import style
from landscape.plot.results import HessianRecord, switch_epoch

DENSITY_FLOOR = 1e-6  # relative to the peak: SLQ densities fall to ~0 between Gaussians


def group_by_run(
    records: Sequence[HessianRecord], label: str | None = None
) -> dict[str, list[HessianRecord]]:
    """Records with an epoch, per training run (the checkpoint's folder), sorted by epoch."""
    runs: dict[str, list[HessianRecord]] = {}
    for record in records:
        if record.meta.epoch is None:
            continue
        key = label or record.meta.run or "run"
        runs.setdefault(key, []).append(record)
    for key in runs:
        runs[key].sort(key=lambda r: r.meta.epoch)
    return runs


def has_epoch_series(records: Sequence[HessianRecord]) -> bool:
    return len({r.meta.epoch for r in records if r.meta.epoch is not None}) >= 2


def _phase_markers(ax, epochs, values, phases, **kwargs) -> None:
    for phase in dict.fromkeys(phases):
        idx = [i for i, p in enumerate(phases) if p == phase]
        ax.scatter(
            np.asarray(epochs)[idx],
            np.asarray(values)[idx],
            color=style.phase_color(phase),
            edgecolors="white",
            linewidths=0.4,
            zorder=4,
            s=16,
            gid=f"phase-{phase}",
            **kwargs,
        )


def _log_if_wide(ax, values) -> None:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)])
    if values.size and values.min() > 0 and values.max() / values.min() > 50:
        style.log_scale(ax)


@style.styled
def plot_hessian_vs_epoch(runs: dict[str, list[HessianRecord]], top_k: int | None = None) -> Figure:
    """λ1..λk (top panel) and tr(H) ± stderr (bottom panel) against epoch, one line per run."""
    fig = style.new_figure(style.COLUMN_WIDTH, 3.8)
    ax_eig, ax_tr = fig.subplots(2, 1, sharex=True)
    many = len(runs) > 1
    switches = []
    for i, (run, records) in enumerate(runs.items()):
        color = style.PALETTE[(i + 2) % len(style.PALETTE)] if many else "black"
        epochs = np.array([r.meta.epoch for r in records], dtype=float)
        phases = [r.meta.phase for r in records]
        k = max((r.eigenvalues.size for r in records), default=0)
        k = min(k, top_k) if top_k else k
        for j in range(k - 1, -1, -1):  # draw λ1 last so it sits on top
            values = np.array(
                [r.eigenvalues[j] if r.eigenvalues.size > j else np.nan for r in records]
            )
            ax_eig.plot(
                epochs,
                values,
                "-",
                color=color,
                linewidth=1.4 if j == 0 else 0.7,
                alpha=1.0 if j == 0 else 0.25 + 0.5 * (k - j) / k,
                zorder=3 if j == 0 else 2,
                label=(run if many else "λ$_1$") if j == 0 else None,
                gid=f"lambda{j + 1}-{run}",
            )
            if j == 0:
                _phase_markers(ax_eig, epochs, values, phases)
        traces = np.array(
            [r.trace if r.trace is not None else np.nan for r in records], dtype=float
        )
        errors = np.array(
            [r.trace_stderr if r.trace_stderr is not None else 0.0 for r in records], dtype=float
        )
        if np.isfinite(traces).any():
            ax_tr.errorbar(
                epochs,
                traces,
                yerr=errors,
                color=color,
                linewidth=1.2,
                capsize=1.5,
                elinewidth=0.7,
                label=run if many else "tr(H)",
                gid=f"trace-{run}",
            )
            _phase_markers(ax_tr, epochs, traces, phases)
        switch = switch_epoch(epochs, phases)
        if switch is not None:
            switches.append((switch, color))
    for switch, color in dict.fromkeys(switches):
        for ax in (ax_eig, ax_tr):
            style.mark_switch(
                ax, switch, label=ax is ax_eig, color=color if many else style.SWITCH_COLOR
            )
    _log_if_wide(ax_eig, [v for rs in runs.values() for r in rs for v in r.eigenvalues])
    ax_eig.set_ylabel("top Hessian eigenvalues")
    ax_tr.set_ylabel("Hessian trace")
    ax_tr.set_xlabel("epoch")
    if not ax_tr.has_data():
        ax_tr.set_visible(False)
    handles, labels = ax_eig.get_legend_handles_labels()
    if not many and k > 1:
        handles.append(Line2D([], [], color="black", linewidth=0.7, alpha=0.5))
        labels.append(f"λ$_2$…λ$_{{{k}}}$")
    seen = list(dict.fromkeys(p for rs in runs.values() for r in rs for p in [r.meta.phase]))
    for phase in seen:
        handles.append(Line2D([], [], marker="o", linestyle="", color=style.phase_color(phase)))
        labels.append(style.phase_label(phase))
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 3))
    return fig


FEW_CHECKPOINTS = 6  # up to this many, lines against the index i; more: one row per checkpoint


@style.styled
def plot_top_eigenvalues(records: Sequence[HessianRecord]) -> Figure:
    """The top-k eigenvalues of each checkpoint (no epoch series needed).

    A few checkpoints with k > 1: one line per checkpoint against the index i. Otherwise
    (k = 1, or many checkpoints): one row per checkpoint, named on the y-axis, with lambda_1
    as a dot in its phase colour and lambda_2..lambda_k as small grey ticks, so the axis
    spans the eigenvalues and no legend has to sit on the data.
    """
    k = max((r.eigenvalues.size for r in records), default=0)
    if k > 1 and len(records) <= FEW_CHECKPOINTS:
        return _top_eigenvalues_by_index(records)
    rows = len(records)
    fig = style.new_figure(style.COLUMN_WIDTH, max(1.6, 0.7 + 0.16 * rows))
    ax = fig.add_subplot()
    position = np.arange(rows)[::-1]  # the first checkpoint on top
    for y, record in zip(position, records):
        if record.eigenvalues.size > 1:
            rest = record.eigenvalues[1:]
            ax.scatter(
                rest,
                np.full(rest.size, y),
                marker="|",
                s=30,
                color="0.55",
                linewidths=0.8,
                zorder=2,
                gid=f"lambda2plus-{record.name}",
            )
    lambda1 = np.array([r.eigenvalues[0] if r.eigenvalues.size else np.nan for r in records])
    phases = [r.meta.phase for r in records]
    _phase_markers(ax, lambda1, position, phases)
    ax.set_yticks(position, [r.name for r in records])
    ax.set_ylim(-0.7, rows - 0.3)
    ax.grid(axis="y", visible=False)
    _log_if_wide_x(ax, [v for r in records for v in r.eigenvalues])
    ax.set_xlabel("top Hessian eigenvalue λ$_1$" if k <= 1 else "Hessian eigenvalues λ$_1$…λ$_k$")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=style.phase_color(p))
        for p in dict.fromkeys(phases)
    ]
    labels = [f"λ$_1$ ({style.phase_label(p)})" for p in dict.fromkeys(phases)]
    if k > 1:
        handles.append(Line2D([], [], marker="|", linestyle="", color="0.55"))
        labels.append(f"λ$_2$…λ$_{{{k}}}$")
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(handles), 3))
    return fig


def _top_eigenvalues_by_index(records: Sequence[HessianRecord]) -> Figure:
    fig = style.new_figure(style.COLUMN_WIDTH)
    ax = fig.add_subplot()
    for i, record in enumerate(records):
        index = np.arange(1, record.eigenvalues.size + 1)
        ax.plot(
            index,
            record.eigenvalues,
            "o-",
            color=style.PALETTE[i % len(style.PALETTE)],
            markersize=3,
            label=record.name,
        )
    _log_if_wide(ax, [v for r in records for v in r.eigenvalues])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("index i")
    ax.set_ylabel("eigenvalue λ$_i$")
    fig.legend(loc="outside right upper")
    return fig


def _log_if_wide_x(ax, values) -> None:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)])
    if values.size and values.min() > 0 and values.max() / values.min() > 50:
        style.log_scale(ax, "x")


def _positive_density(record: HessianRecord) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(record.density_values, dtype=float)
    peak = np.nanmax(values) if values.size and np.isfinite(values).any() else 1.0
    return record.density_grid, np.clip(values, peak * DENSITY_FLOOR, None)


@style.styled
def plot_density(records: Sequence[HessianRecord]) -> Figure:
    """Spectral densities on a log y-axis; several checkpoints are coloured by epoch."""
    records = [r for r in records if r.density_grid is not None]
    fig = style.new_figure(style.COLUMN_WIDTH)
    ax = fig.add_subplot()
    epochs = [r.meta.epoch for r in records]
    by_epoch = len(records) > 1 and all(e is not None for e in epochs)
    norm = colors.Normalize(min(epochs), max(epochs)) if by_epoch else None
    cmap = matplotlib.colormaps[style.LOSS_CMAP]
    for i, record in enumerate(records):
        grid, values = _positive_density(record)
        color = cmap(norm(record.meta.epoch)) if by_epoch else style.PALETTE[i % len(style.PALETTE)]
        linestyle = "--" if record.meta.phase == "sam" and by_epoch else "-"
        ax.plot(
            grid,
            values,
            linestyle,
            color=color,
            linewidth=1.0,
            label=record.name,
            gid=f"density-{record.name}",
        )
    style.log_scale(ax)
    peak = max(
        (np.nanmax(r.density_values) for r in records if np.isfinite(r.density_values).any()),
        default=1.0,
    )
    ax.set_ylim(bottom=peak * DENSITY_FLOOR * 0.5)
    # Between its Gaussians an SLQ density falls to ~0, which a log axis cannot show: values
    # are clipped at a floor, drawn and named so that the flat stretches are not read as data.
    ax.axhline(
        peak * DENSITY_FLOOR,
        color=style.SWITCH_COLOR,
        linewidth=0.6,
        linestyle=":",
        zorder=0.5,
        gid="floor",
    )
    floor = Line2D(
        [],
        [],
        color=style.SWITCH_COLOR,
        linewidth=0.6,
        linestyle=":",
        label=f"floor: 10$^{{{int(np.log10(DENSITY_FLOOR))}}}$ × peak (smaller values clipped)",
    )
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("spectral density")
    if len(records) == 1 and records[0].eigenvalues.size:
        ax.vlines(
            records[0].eigenvalues,
            0,
            0.05,
            transform=ax.get_xaxis_transform(),
            color=style.PALETTE[1],
            linewidth=1.0,
            label="top-k (Lanczos)",
            gid="topk-rug",
        )
        ax.legend(
            handles=[*ax.get_legend_handles_labels()[0], floor], loc="upper right", fontsize=6.5
        )
        title = records[0].name
        if records[0].meta.phase:
            title += f" ({style.phase_label(records[0].meta.phase)})"
        ax.set_title(title)
    elif by_epoch:
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02, fraction=0.05)
        bar.set_label("epoch")
        switch = switch_epoch(epochs, [r.meta.phase for r in records])
        if switch is not None:
            bar.ax.axhline(switch, color="white", linewidth=1.2)
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.legend(
            handles=[
                Line2D([], [], color="0.3", linestyle="-", label="SGD"),
                Line2D([], [], color="0.3", linestyle="--", label="SAM"),
                floor,
            ],
            loc="outside lower center",
            ncols=3,
            fontsize=6.5,
        )
    else:
        ax.legend(
            handles=[*ax.get_legend_handles_labels()[0], floor], loc="upper right", fontsize=6.5
        )
    if len(records) > 1:
        runs = sorted({r.meta.run for r in records if getattr(r.meta, "run", None)})
        ax.set_title(
            f"Hessian spectral density (SLQ), {len(records)} checkpoints"
            + (f"\n{', '.join(runs)}" if runs else ""),
            fontsize=8,
        )
    return fig


def _common_grid(blocks) -> np.ndarray:
    low = min(float(b.density_grid[0]) for b in blocks)
    high = max(float(b.density_grid[-1]) for b in blocks)
    return np.linspace(low, high, 400)


@style.styled
def plot_blocks(record: HessianRecord) -> Figure:
    """Per-block spectra of one checkpoint (``landscape hessian --blocks``): the largest
    eigenvalue and the trace of each diagonal block as bars, and the blocks' spectral densities
    as a heatmap (one row per block, log colour scale, on a common eigenvalue axis)."""
    blocks = record.blocks
    dense = [b for b in blocks if b.density_grid is not None]
    traced = [b for b in blocks if b.trace is not None and np.isfinite(b.trace)]
    panels = 1 + bool(traced) + bool(dense)
    height = 1.0 + 0.16 * len(blocks)
    fig = style.new_figure(style.FULL_WIDTH, max(2.2, height))
    axes = fig.subplots(1, panels, sharey=not dense, squeeze=False)[0]
    positions = np.arange(len(blocks))
    names = [b.name for b in blocks]
    lambda1 = np.array([b.eigenvalues[0] if b.eigenvalues.size else np.nan for b in blocks])
    ax = axes[0]
    ax.barh(positions, lambda1, color=style.PALETTE[0], gid="blocks-lambda1")
    ax.set_yticks(positions, names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("largest eigenvalue λ₁ of the block")
    if np.all(lambda1[np.isfinite(lambda1)] > 0):
        _log_if_wide_x(ax, lambda1[np.isfinite(lambda1)])
    if traced:
        ax = axes[1]
        traces = np.array([np.nan if b.trace is None else b.trace for b in blocks])
        errors = np.array([0.0 if b.trace_stderr is None else b.trace_stderr for b in blocks])
        ax.barh(positions, traces, xerr=errors, color=style.PALETTE[2], gid="blocks-trace")
        ax.set_yticks(positions, names if dense else [], fontsize=6)
        if dense:
            ax.invert_yaxis()
        ax.set_xlabel("trace of the block (± stderr)")
    if dense:
        ax = axes[-1]
        grid = _common_grid(dense)
        rows = np.full((len(blocks), grid.size), np.nan)
        for i, block in enumerate(blocks):
            if block.density_grid is None:
                continue
            values = np.interp(grid, block.density_grid, block.density_values, left=0, right=0)
            peak = np.nanmax(values) if np.isfinite(values).any() else 1.0
            rows[i] = np.clip(values, max(peak, 1e-300) * DENSITY_FLOOR, None)
        image = ax.imshow(
            rows,
            aspect="auto",
            interpolation="nearest",
            extent=(grid[0], grid[-1], len(blocks) - 0.5, -0.5),
            norm=colors.LogNorm(),
            cmap=style.LOSS_CMAP,
            gid="blocks-density",
        )
        ax.set_yticks(positions, [], fontsize=6)
        ax.grid(False)
        ax.set_xlabel("eigenvalue λ")
        bar = fig.colorbar(image, ax=ax, pad=0.02, fraction=0.05)
        bar.set_label("spectral density (SLQ)")
    title = f"Per-block spectra, {record.name}"
    if record.meta.phase:
        title += f" ({style.phase_label(record.meta.phase)})"
    fig.suptitle(title, fontsize=8)
    return fig
