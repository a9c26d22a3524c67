"""Experiments that chain training and analyses: ``landscape experiment late-sam``.

Orchestration only: training is landscape.train, curvature landscape.curvature,
sharpness landscape.sharpness, interpolation landscape.surface, escape landscape.escape.
"""

from landscape.experiment.config import LateSamConfig
from landscape.experiment.plan import Run, plan_runs

__all__ = ["LateSamConfig", "Run", "plan_runs", "run_late_sam"]


def run_late_sam(*args, **kwargs):
    """See :func:`landscape.experiment.late_sam.run_late_sam` (imported lazily: it pulls in
    torch)."""
    from landscape.experiment.late_sam import run_late_sam as _run

    return _run(*args, **kwargs)
