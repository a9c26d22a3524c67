"""What the late-SAM experiment tells a person while it runs: one line per run, with an ETA.

Training dominates the time, and its cost is known in advance up to one rate: a run trains
``sgd_epochs + 2 x sam_epochs`` epoch-equivalents (a SAM step takes two forward-backward
passes, Foret et al. 2021), from its branch point on. The ETA of the training is the work left
times the seconds per epoch-equivalent measured on the runs trained so far; the analyses then
get their own ETA from the seconds per analysed run. The per-epoch lines stay in each run's
``metrics.jsonl`` (and on stderr with ``-v``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from landscape.experiment.plan import Run

log = logging.getLogger("landscape.experiment")

SAM_COST = 2.0  # a SAM step costs two gradient evaluations


def epochs_trained(run: Run, epochs: int) -> tuple[int, int]:
    """(SGD epochs, SAM epochs) that ``run`` itself trains, after its branch point."""
    start = run.branch_epoch or 0
    sam_from = epochs if run.sam_start is None else max(run.sam_start, start)
    sam_to = epochs if run.sam_end is None else run.sam_end
    sam = max(0, min(sam_to, epochs) - sam_from)
    return epochs - start - sam, sam


def run_cost(run: Run, epochs: int) -> float:
    """Epoch-equivalents of training ``run`` (a SAM epoch counts :data:`SAM_COST`)."""
    sgd, sam = epochs_trained(run, epochs)
    return sgd + SAM_COST * sam


def describe(run: Run, epochs: int) -> str:
    """e.g. ``late-sam t0=255, seed 1: epochs 255-300 (45 SAM) from sgd-s1``."""
    sgd, sam = epochs_trained(run, epochs)
    start = run.branch_epoch or 0
    parts = [f"{sgd} SGD"] * bool(sgd) + [f"{sam} SAM"] * bool(sam)
    text = f"{run.arm_label}, seed {run.seed}: epochs {start}-{epochs} ({' + '.join(parts)})"
    return text + (f" from {run.parent}" if run.parent else "")


def clock_text(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ExperimentProgress:
    """One line per run of training, then per run of analyses, each with the ETA left.

    ``clock`` is injectable for the tests; ``emit`` receives each line (default: the
    ``landscape.experiment`` logger at INFO).
    """

    def __init__(
        self,
        runs: Sequence[Run],
        epochs: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        self.runs, self.epochs, self.clock = list(runs), epochs, clock
        self.emit = emit or log.info
        self.costs = {run.label: run_cost(run, epochs) for run in self.runs}
        self.left = sum(self.costs.values())  # epoch-equivalents of the runs not yet started
        self.trained_cost, self.trained_seconds = 0.0, 0.0
        self.analysed, self.analysis_seconds = 0, 0.0
        self._started: tuple[str, float, str] | None = None  # (label, time, kind)

    def _finish(self) -> None:
        if self._started is None:
            return
        label, began, kind = self._started
        seconds = self.clock() - began
        if kind == "train":
            self.trained_cost += self.costs[label]
            self.trained_seconds += seconds
        elif kind == "analyse":
            self.analysed += 1
            self.analysis_seconds += seconds
        self._started = None

    def training_eta(self, current: float = 0.0) -> float:
        """Seconds to train ``current`` epoch-equivalents and the runs not yet started."""
        if self.trained_cost <= 0:
            return math.nan
        return (self.left + current) * self.trained_seconds / self.trained_cost

    def analysis_eta(self, remaining: int) -> float:
        if self.analysed == 0:
            return math.nan
        return remaining * self.analysis_seconds / self.analysed

    def train(self, index: int, run: Run, done: bool) -> None:
        """Run ``index`` (1-based) starts training, or was trained before (``done``)."""
        self._finish()
        self.left -= self.costs[run.label]  # now: the runs after this one
        head = f"run {index}/{len(self.runs)} train {describe(run, self.epochs)}"
        if done:
            self.emit(f"{head}: already trained")
            return
        eta = self.training_eta(self.costs[run.label])
        when = (
            f"ETA {clock_text(eta)} for the training, then the analyses"
            if math.isfinite(eta)
            else "ETA after the first run"
        )
        self.emit(f"{head}; {when}")
        self._started = (run.label, self.clock(), "train")

    def analyse(self, index: int, run: Run) -> None:
        """Run ``index`` (1-based) starts its analyses."""
        self._finish()
        eta = self.analysis_eta(len(self.runs) - index + 1)
        when = f"ETA {clock_text(eta)} (analyses; then interpolations and escapes)"
        if not math.isfinite(eta):
            when = "ETA after the first analysis"
        self.emit(f"run {index}/{len(self.runs)} analyse {run.arm_label}, seed {run.seed}; {when}")
        self._started = (run.label, self.clock(), "analyse")

    def close(self) -> None:
        """The last run's time is counted."""
        self._finish()
