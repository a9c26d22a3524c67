"""The options of ``landscape experiment late-sam``: training arms, seeds and analyses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from landscape.errors import UserError

# Options handed unchanged to every training run (landscape.train.TrainConfig fields).
TRAIN_FIELDS = (
    "dataset", "arch", "epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule",
    "milestones", "gamma", "rho", "augment", "dtype", "data_dir", "momentum_across_switch",
)


@dataclass
class LateSamConfig:
    """Zhou et al. (ICLR 2025): SGD for most of training, SAM only for the last epochs.

    Arms: ``sgd`` (the trunk, SGD throughout), ``late-sam`` at each t0 in ``switch_epochs``
    (branched from the trunk's checkpoint after t0 epochs), ``full-sam`` (SAM from epoch 0)
    and, for each t1 in ``sam_sgd_epochs``, ``sam-sgd`` (SAM for t1 epochs, then SGD; branched
    from the full-SAM run). Every arm runs for every seed.
    """

    name: str = "late-sam"
    # training (landscape.train.TrainConfig)
    dataset: str = "digits"
    arch: str = "cnn-bn"
    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: list[int] | None = None  # None: the training default (half-way)
    gamma: float = 0.1
    rho: float = 0.05
    augment: str = "default"
    dtype: str = "float32"
    data_dir: str | None = None
    momentum_across_switch: str = "keep"
    # arms
    switch_epochs: list[int] | None = None  # None: 1/2, 3/4 and 9/10 of the epochs
    full_sam: bool = True
    sam_sgd_epochs: list[int] | None = None  # None: half the epochs (if full_sam)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # analyses
    samples: int = 512
    analysis_batch_size: int | None = None  # None: measured per kind of work (landscape.batching)
    bn_mode: str = "eval"
    eig_tol: float = 1e-3
    trace_rel_stderr: float = 0.05
    trace_max_hvps: int = 400
    sharpness_rho: float | None = None  # None: the training rho
    sharpness_steps: int = 10
    sharpness_m: int | None = None
    interpolation_points: int = 21
    escape: bool = True
    escape_steps: int = 100
    escape_lr: float | None = None  # None: the learning rate at the latest switch epoch
    escape_rho: float | None = None  # None: the training rho
    escape_eig_every: int = 25
    escape_momentum: float | None = None  # None: the training momentum

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def train_overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TRAIN_FIELDS}

    def analysis_options(self) -> dict[str, Any]:
        """What shapes the analyses (a change means they are redone)."""
        keys = ("samples", "analysis_batch_size", "bn_mode", "eig_tol", "trace_rel_stderr",
                "trace_max_hvps", "sharpness_steps", "sharpness_m", "dtype")
        out = {k: getattr(self, k) for k in keys}
        out["sharpness_rho"] = self.sharpness_radius
        return out

    @property
    def sharpness_radius(self) -> float:
        return self.rho if self.sharpness_rho is None else self.sharpness_rho

    def validate(self) -> LateSamConfig:
        """Check the options and fill in the switch epochs that follow ``epochs``."""
        if self.epochs < 2:
            raise UserError(f"the experiment needs at least 2 epochs, got {self.epochs}")
        if self.switch_epochs is None:
            self.switch_epochs = sorted(
                {min(self.epochs - 1, max(1, round(f * self.epochs))) for f in (0.5, 0.75, 0.9)}
            )
        if self.sam_sgd_epochs is None:
            self.sam_sgd_epochs = [self.epochs // 2] if self.full_sam else []
        if not self.seeds:
            raise UserError("give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds {self.seeds} repeat a seed")
        for t0 in self.switch_epochs:
            if not 0 < t0 < self.epochs:
                raise UserError(
                    f"switch epoch {t0} must be between 1 and {self.epochs - 1} (--epochs {self.epochs})"
                )
        for t1 in self.sam_sgd_epochs:
            if not 0 < t1 < self.epochs:
                raise UserError(f"SAM->SGD epoch {t1} must be between 1 and {self.epochs - 1}")
        if self.sam_sgd_epochs and not self.full_sam:
            raise UserError("SAM->SGD arms branch from the full-SAM run: keep full_sam on")
        if self.bn_mode not in ("eval", "train"):
            raise UserError(f"bn_mode must be eval or train, not {self.bn_mode!r}")
        if self.samples < 1 or self.interpolation_points < 2 or self.escape_steps < 1:
            raise UserError("samples >= 1, interpolation_points >= 2 and escape_steps >= 1 are needed")
        if self.escape and not self.switch_epochs:
            raise UserError("the escape curve starts at the latest switch epoch: give switch_epochs")
        return self
