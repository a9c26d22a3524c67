"""Which training runs the late-SAM experiment needs, where they live, and where they branch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from landscape.experiment.config import LateSamConfig


@dataclass(frozen=True)
class Run:
    """One training run: an arm for one seed."""

    label: str  # e.g. "late-sam-t30-s1"; also the folder and result group name
    arm: str  # "sgd" | "late-sam" | "full-sam" | "sam-sgd"
    seed: int
    sam_start: int | None  # epoch SAM starts (None: never)
    sam_end: int | None  # epoch SAM stops (None: at the end)
    parent: str | None = None  # label of the run this one branches from
    branch_epoch: int | None = None  # completed epochs of the parent at the branch point
    branch_phase: str | None = None  # phase of the parent's checkpoint at the branch point

    @property
    def t0(self) -> float:
        return float("nan") if self.sam_start is None else float(self.sam_start)

    @property
    def t1(self) -> float:
        return float("nan") if self.sam_end is None else float(self.sam_end)

    @property
    def final_phase(self) -> str:
        return "sam" if self.sam_start is not None and self.sam_end is None else "sgd"

    @property
    def arm_label(self) -> str:
        if self.arm == "late-sam":
            return f"late-sam t0={self.sam_start}"
        if self.arm == "sam-sgd":
            return f"sam-sgd t1={self.sam_end}"
        return self.arm


def plan_runs(config: LateSamConfig) -> list[Run]:
    """Runs in an order where every parent comes before its branches."""
    runs = []
    for seed in config.seeds:
        trunk = Run(f"sgd-s{seed}", "sgd", seed, None, None)
        runs.append(trunk)
        for t0 in sorted(config.switch_epochs):
            runs.append(
                Run(
                    f"late-sam-t{t0}-s{seed}",
                    "late-sam",
                    seed,
                    t0,
                    None,
                    parent=trunk.label,
                    branch_epoch=t0,
                    branch_phase="sgd",
                )
            )
        if config.full_sam:
            full = Run(f"full-sam-s{seed}", "full-sam", seed, 0, None)
            runs.append(full)
            for t1 in sorted(config.sam_sgd_epochs):
                runs.append(
                    Run(
                        f"sam-sgd-t{t1}-s{seed}",
                        "sam-sgd",
                        seed,
                        0,
                        t1,
                        parent=full.label,
                        branch_epoch=t1,
                        branch_phase="sam",
                    )
                )
    return runs


def save_every_for(run: Run, runs: list[Run]) -> int:
    """Checkpoint spacing that includes every epoch another run branches from."""
    points = [r.branch_epoch for r in runs if r.parent == run.label and r.branch_epoch]
    return reduce(math.gcd, points) if points else 0


def run_dir(root: Path, run: Run) -> Path:
    return root / "checkpoints" / run.label


def checkpoint_path(root: Path, run: Run, epoch: int, phase: str) -> Path:
    from landscape.train.run_files import checkpoint_name

    return run_dir(root, run) / checkpoint_name(epoch, phase)
