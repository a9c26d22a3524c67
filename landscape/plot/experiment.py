"""The late-SAM experiment (``experiment/<name>/`` of ``landscape experiment late-sam``,
docs/file-format.md).

:func:`plot_late_sam_summary`: test error and sharpness against the epoch t0 at which SAM
takes over (Zhou et al., ICLR 2025, Fig. 1): late-SAM arms as a line over t0 with the spread
over seeds, full SAM as t0 = 0, SGD as a horizontal band.

:func:`plot_dose_response`: the share of the SGD -> full-SAM gap each arm closes, within each
seed, against its number of SAM steps: one dot per seed, the mean with its 95 % t-interval.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from landscape.plot import style
from landscape.plot.results import Experiment

PANELS = (
    ("test_error", "test error (%)", 100.0),
    ("lambda1", "top eigenvalue λ$_1$", 1.0),
    ("trace", "Hessian trace", 1.0),
    ("worst_case", "worst-case sharpness", 1.0),
)


def _column(summary: dict, metric: str, stat: str) -> np.ndarray | None:
    """A summary column; test error is 1 - test accuracy (the same std)."""
    if metric == "test_error":
        acc = summary.get(f"test_acc_{stat}")
        if acc is None:
            return None
        return (
            1.0 - np.asarray(acc, dtype=float) if stat == "mean" else np.asarray(acc, dtype=float)
        )
    values = summary.get(f"{metric}_{stat}")
    return None if values is None else np.asarray(values, dtype=float)


def panels_present(experiment: Experiment) -> list[tuple[str, str, float]]:
    out = []
    for panel in PANELS:
        values = _column(experiment.summary, panel[0], "mean")
        if values is not None and np.isfinite(values).any():
            out.append(panel)
    return out


@style.styled
def plot_late_sam_summary(experiment: Experiment) -> Figure:
    panels = panels_present(experiment)
    fig = style.new_figure(style.COLUMN_WIDTH, 0.9 + 1.45 * max(len(panels), 1))
    axes = np.atleast_1d(fig.subplots(max(len(panels), 1), 1, sharex=True))
    s = experiment.summary
    arms = [str(a) for a in s.get("arm", [])]
    t0 = np.asarray(s.get("t0", np.full(len(arms), np.nan)), dtype=float)
    t1 = np.asarray(s.get("t1", np.full(len(arms), np.nan)), dtype=float)
    late = np.array([a == "late-sam" for a in arms])
    order = np.argsort(np.where(late, t0, np.inf))
    for ax, (metric, label, scale) in zip(axes, panels):
        mean = scale * _column(s, metric, "mean")
        std_values = _column(s, metric, "std")
        std = scale * np.nan_to_num(std_values if std_values is not None else np.zeros_like(mean))
        idx = [i for i in order if late[i] and np.isfinite(mean[i])]
        if idx:
            ax.errorbar(
                t0[idx],
                mean[idx],
                yerr=std[idx],
                fmt="o-",
                color=style.PHASE_COLORS["sam"],
                capsize=2,
                markersize=3.5,
                label="late SAM (from t$_0$)",
                gid=f"late-sam-{metric}",
            )
        for i, arm in enumerate(arms):
            if not np.isfinite(mean[i]):
                continue
            if arm == "full-sam":
                ax.errorbar(
                    [0.0],
                    [mean[i]],
                    yerr=[std[i]],
                    fmt="s",
                    color="black",
                    capsize=2,
                    markersize=4,
                    label="full SAM",
                    gid=f"full-sam-{metric}",
                )
            elif arm == "sgd":
                ax.axhline(
                    mean[i],
                    color=style.PHASE_COLORS["sgd"],
                    linewidth=1.0,
                    label="SGD only",
                    gid=f"sgd-{metric}",
                )
                ax.axhspan(
                    mean[i] - std[i],
                    mean[i] + std[i],
                    color=style.PHASE_COLORS["sgd"],
                    alpha=0.12,
                    linewidth=0,
                )
            elif arm == "sam-sgd" and np.isfinite(t1[i]):
                ax.errorbar(
                    [t1[i]],
                    [mean[i]],
                    yerr=[std[i]],
                    fmt="^",
                    color=style.PALETTE[2],
                    capsize=2,
                    markersize=4,
                    label="SAM then SGD (at t$_1$)",
                    gid=f"sam-sgd-{metric}",
                )
        ax.set_ylabel(label)
    axes[-1].set_xlabel("epoch t$_0$ at which SAM starts")
    epochs = experiment.attrs.get("epochs")
    if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) and epochs > 0:
        axes[-1].set_xlim(-0.03 * epochs, epochs * 1.03)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(list(unique.values()), list(unique), loc="outside lower center", ncols=2)
    title = experiment.name
    details = [str(experiment.attrs.get(k)) for k in ("dataset", "arch") if experiment.attrs.get(k)]
    axes[0].set_title(f"{title} ({', '.join(details)})" if details else title)
    return fig


# gap-closed panels: metric key of the summary and runs tables, label
GAP_PANELS = (
    ("test_acc", "test error"),
    ("lambda1", "top eigenvalue λ$_1$"),
    ("trace", "Hessian trace"),
    ("worst_case", "worst-case sharpness"),
)


def gap_panels_present(experiment: Experiment) -> list[tuple[str, str]]:
    s = experiment.summary
    return [
        p
        for p in GAP_PANELS
        if f"{p[0]}_gap_mean" in s and np.isfinite(s[f"{p[0]}_gap_mean"]).any()
    ]


@style.styled
def plot_dose_response(experiment: Experiment) -> Figure:
    """Gap closed (%) against SAM steps: late SAM (from t0) and SAM then SGD (up to t1)."""
    panels = gap_panels_present(experiment)
    rows = max(1, (len(panels) + 1) // 2)
    fig = style.new_figure(style.FULL_WIDTH, 0.9 + 1.9 * rows)
    axes = np.atleast_1d(fig.subplots(rows, 2 if len(panels) > 1 else 1, sharex=True)).ravel()
    s, runs = experiment.summary, experiment.runs
    arms = [str(a) for a in s.get("arm", [])]
    steps = np.asarray(s.get("sam_steps", np.full(len(arms), np.nan)), dtype=float)
    run_arms = np.array([str(a) for a in runs.get("arm", [])])
    run_steps = np.asarray(runs.get("sam_steps", np.full(len(run_arms), np.nan)), dtype=float)
    kinds = (
        ("late-sam", "o-", style.PHASE_COLORS["sam"], "late SAM (last steps)"),
        ("sam-sgd", "^--", style.PALETTE[2], "SAM then SGD (first steps)"),
    )
    for ax, (metric, label) in zip(axes, panels):
        mean = 100 * np.asarray(s[f"{metric}_gap_mean"], dtype=float)
        low = 100 * np.asarray(s.get(f"{metric}_gap_low", mean / 100), dtype=float)
        high = 100 * np.asarray(s.get(f"{metric}_gap_high", mean / 100), dtype=float)
        for arm, fmt, color, name in kinds:
            idx = [
                i
                for i in np.argsort(steps)
                if arms[i] == arm and np.isfinite(mean[i]) and np.isfinite(steps[i])
            ]
            if not idx:
                continue
            yerr = np.vstack([mean[idx] - low[idx], high[idx] - mean[idx]])
            ax.errorbar(
                steps[idx],
                mean[idx],
                yerr=np.nan_to_num(yerr),
                fmt=fmt,
                color=color,
                capsize=2,
                markersize=4,
                label=f"{name}: mean, 95 % CI",
                gid=f"{arm}-gap-{metric}",
            )
            per_seed = runs.get(f"gap_{metric}")
            if per_seed is not None:
                mask = (run_arms == arm) & np.isfinite(per_seed) & np.isfinite(run_steps)
                ax.plot(
                    run_steps[mask],
                    100 * np.asarray(per_seed, dtype=float)[mask],
                    fmt[0],
                    color=color,
                    alpha=0.35,
                    markersize=2.5,
                    linestyle="none",
                    label=f"{name}: each seed",
                    gid=f"{arm}-gap-{metric}-seeds",
                )
        ax.axhline(0.0, color=style.PHASE_COLORS["sgd"], linewidth=0.8, label="SGD (0 %)")
        ax.axhline(100.0, color="black", linewidth=0.8, linestyle=":", label="full SAM (100 %)")
        ax.set_title(label)
        ax.set_ylabel("gap closed (%)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[max(0, len(panels) - 2) : len(panels)]:
        ax.set_xlabel("SAM steps")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(list(unique.values()), list(unique), loc="outside lower center", ncols=3)
    details = [str(experiment.attrs.get(k)) for k in ("dataset", "arch") if experiment.attrs.get(k)]
    fig.suptitle(
        f"{experiment.name}: share of the SGD → full-SAM gap closed, paired within each seed"
        + (f" ({', '.join(details)})" if details else "")
    )
    return fig
