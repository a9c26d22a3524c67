"""The late-SAM experiment summary (``experiment/<name>/summary`` of ``landscape experiment
late-sam``, docs/file-format.md): test accuracy and sharpness against the epoch t0 at which
SAM takes over (Zhou et al., ICLR 2025, Fig. 1): late-SAM arms as a line over t0 with the
spread over seeds, full SAM as t0 = 0, SGD as a horizontal band.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from landscape.plot import style
from landscape.plot.results import Experiment

PANELS = (
    ("test_acc", "test accuracy (%)", 100.0),
    ("lambda1", "top eigenvalue λ$_1$", 1.0),
    ("trace", "Hessian trace", 1.0),
    ("worst_case", "worst-case sharpness", 1.0),
)


def panels_present(experiment: Experiment) -> list[tuple[str, str, float]]:
    summary = experiment.summary
    return [p for p in PANELS if f"{p[0]}_mean" in summary and np.isfinite(summary[f"{p[0]}_mean"]).any()]


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
        mean = scale * np.asarray(s[f"{metric}_mean"], dtype=float)
        std = scale * np.nan_to_num(np.asarray(s.get(f"{metric}_std", np.zeros_like(mean)), dtype=float))
        idx = [i for i in order if late[i] and np.isfinite(mean[i])]
        if idx:
            ax.errorbar(t0[idx], mean[idx], yerr=std[idx], fmt="o-", color=style.PHASE_COLORS["sam"],
                        capsize=2, markersize=3.5, label="late SAM (from t$_0$)", gid=f"late-sam-{metric}")
        for i, arm in enumerate(arms):
            if not np.isfinite(mean[i]):
                continue
            if arm == "full-sam":
                ax.errorbar([0.0], [mean[i]], yerr=[std[i]], fmt="s", color="black", capsize=2, markersize=4,
                            label="full SAM", gid=f"full-sam-{metric}")
            elif arm == "sgd":
                ax.axhline(mean[i], color=style.PHASE_COLORS["sgd"], linewidth=1.0, label="SGD only",
                           gid=f"sgd-{metric}")
                ax.axhspan(mean[i] - std[i], mean[i] + std[i], color=style.PHASE_COLORS["sgd"], alpha=0.12,
                           linewidth=0)
            elif arm == "sam-sgd" and np.isfinite(t1[i]):
                ax.errorbar([t1[i]], [mean[i]], yerr=[std[i]], fmt="^", color=style.PALETTE[2], capsize=2,
                            markersize=4, label="SAM then SGD (at t$_1$)", gid=f"sam-sgd-{metric}")
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
