"""Training curves from ``checkpoints/<run>/metrics.jsonl``: loss, accuracy and learning rate
against epoch, with the SGD and SAM phases shaded and the switch marked.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from landscape.plot import style
from landscape.plot.results import TrainingLog

SPLIT_STYLE = {"train": "-", "test": "--"}


def phase_spans(
    epochs: np.ndarray, phases: list[str | None]
) -> list[tuple[float, float, str | None]]:
    """Contiguous phase blocks as (start, end, phase); epoch e covers the interval (e − 1, e]."""
    spans: list[tuple[float, float, str | None]] = []
    for epoch, phase in zip(epochs, phases):
        if spans and spans[-1][2] == phase:
            spans[-1] = (spans[-1][0], float(epoch), phase)
        else:
            start = spans[-1][1] if spans else float(epoch) - 1
            spans.append((start, float(epoch), phase))
    return spans


def shade_phases(ax, epochs: np.ndarray, phases: list[str | None]) -> None:
    for start, end, phase in phase_spans(epochs, phases):
        if phase:
            ax.axvspan(
                start,
                end,
                color=style.phase_color(phase),
                alpha=0.08,
                linewidth=0,
                zorder=0,
                gid=f"phase-{phase}",
            )


@style.styled
def plot_training(log: TrainingLog) -> Figure:
    """Three panels sharing the epoch axis: loss (log), accuracy (%), learning rate (log)."""
    fig = style.new_figure(style.COLUMN_WIDTH, 4.4)
    panels = [("loss", "loss"), ("acc", "accuracy (%)")]
    has_lr = "lr" in log.columns and np.isfinite(log.columns["lr"]).any()
    axes = fig.subplots(
        3 if has_lr else 2, 1, sharex=True, height_ratios=[1, 1, 0.6] if has_lr else [1, 1]
    )
    for ax, (quantity, ylabel) in zip(axes, panels):
        for split, color in (("train", style.PALETTE[0]), ("test", style.PALETTE[1])):
            values = log.columns.get(f"{split}_{quantity}")
            if values is None or not np.isfinite(values).any():
                continue
            ax.plot(
                log.epoch,
                100 * values if quantity == "acc" else values,
                SPLIT_STYLE[split],
                color=color,
                label=split,
                gid=f"{split}_{quantity}",
            )
        ax.set_ylabel(ylabel)
    losses = np.concatenate([log.columns.get(k, np.empty(0)) for k in ("train_loss", "test_loss")])
    losses = losses[np.isfinite(losses)]
    if losses.size and losses.min() > 0 and losses.max() / losses.min() > 20:
        style.log_scale(axes[0])
    if has_lr:
        axes[2].plot(
            log.epoch, log.columns["lr"], "-", color="black", drawstyle="steps-pre", gid="lr"
        )
        lr = log.columns["lr"][np.isfinite(log.columns["lr"])]
        if lr.min() > 0 and lr.max() / lr.min() > 5:
            style.log_scale(axes[2])
        axes[2].set_ylabel("learning rate")
    switch = log.switch_epoch()
    for ax in axes:
        shade_phases(ax, log.epoch, log.phase)
        if switch is not None:
            style.mark_switch(ax, switch, label=ax is axes[0])
    axes[-1].set_xlabel("epoch")
    axes[-1].set_xlim(
        log.epoch.min() - 1 if log.epoch.size > 1 else log.epoch.min() - 0.5, log.epoch.max()
    )
    handles, labels = axes[0].get_legend_handles_labels()
    for phase in dict.fromkeys(p for p in log.phase if p):
        handles.append(Patch(color=style.phase_color(phase), alpha=0.25))
        labels.append(f"{style.phase_label(phase)} phase")
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 3))
    axes[0].set_title(log.run)
    return fig
