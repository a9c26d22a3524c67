"""The options of ``landscape experiment late-sam``: training arms, seeds and analyses."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from landscape.errors import UserError

# Options handed unchanged to every training run (landscape.train.TrainConfig fields).
TRAIN_FIELDS = (
    "dataset",
    "arch",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "milestones",
    "gamma",
    "rho",
    "augment",
    "dtype",
    "data_dir",
    "momentum_across_switch",
    "label_noise",
    "label_noise_seed",
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
    # training (landscape.train.TrainConfig). The default gives late SAM a budget like the
    # paper's (thousands of SAM steps): 300 epochs of 45 steps (batch 32 on 1,437 digits),
    # so SAM from t0 = 225 takes 3,375 steps; configs/late-sam-digits-quick.toml is the
    # short setting (60 epochs, batch 128: 66-330 late-SAM steps).
    dataset: str = "digits"
    arch: str = "cnn-bn"
    epochs: int = 300
    batch_size: int = 32
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
    # a fraction of training labels replaced by another class, the same for every seed
    # (landscape.data.with_label_noise); the analyses use these labels too, test labels are clean
    label_noise: float = 0.0
    label_noise_seed: int = 0
    # arms
    switch_epochs: list[int] | None = None  # None: SAM for the last 25, 15, 10 and 5 % of epochs
    full_sam: bool = True
    sam_sgd_epochs: list[int] | None = (
        None  # None: half the epochs, the high-lr phase (if full_sam)
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    # analyses
    samples: int = 512
    analysis_batch_size: int | None = None  # None: measured per kind of work (landscape.batching)
    bn_mode: str = "eval"
    eig_tol: float = 1e-3
    trace_rel_stderr: float = 0.05
    trace_max_hvps: int = 400
    # worst-case sharpness radii; None: rho/2, rho and 2 rho. The ``worst_case`` column is
    # the one at the training rho (or the first radius when rho is not among them).
    sharpness_rho: list[float] | float | None = None
    sharpness_steps: int = 10
    sharpness_m: int | None = None
    interpolation_points: int = 21
    escape: bool = True
    escape_steps: int = 100
    escape_lr: float | None = None  # None: the learning rate at the latest switch epoch
    escape_rho: float | None = None  # None: the training rho
    escape_eig_every: int = 25
    escape_momentum: float | None = None  # None: the training momentum
    # BatchNorm in the escape: "auto" follows training (batch statistics when the model has
    # BatchNorm), "eval" (running statistics) or "train". Weight decay None: the training's.
    escape_bn_mode: str = "auto"
    escape_weight_decay: float | None = None
    escape_divergence_factor: float = 100.0  # diverged: loss > factor x max(start loss, 0.01)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def train_overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TRAIN_FIELDS}

    def analysis_options(self) -> dict[str, Any]:
        """What shapes the analyses (a change means they are redone)."""
        keys = (
            "samples",
            "analysis_batch_size",
            "bn_mode",
            "eig_tol",
            "trace_rel_stderr",
            "trace_max_hvps",
            "sharpness_steps",
            "sharpness_m",
            "dtype",
        )
        out = {k: getattr(self, k) for k in keys}
        out["sharpness_rho"] = self.sharpness_radii
        return out

    @property
    def sharpness_radii(self) -> list[float]:
        """The radii of worst-case sharpness, in the order given."""
        if self.sharpness_rho is None:
            return [self.rho / 2, self.rho, 2 * self.rho] if self.rho > 0 else [0.05]
        if isinstance(self.sharpness_rho, (int, float)):
            return [float(self.sharpness_rho)]
        return [float(r) for r in self.sharpness_rho]

    @property
    def sharpness_radius(self) -> float:
        """The radius of the ``worst_case`` column: the training rho when it is measured."""
        radii = self.sharpness_radii
        return self.rho if self.rho in radii else radii[0]

    def steps_per_epoch(self, train_examples: int) -> int:
        """Optimizer steps in one training epoch (as landscape.train counts them)."""
        from landscape.train.loop import steps_per_epoch

        return steps_per_epoch(train_examples, self.batch_size)

    def validate(self) -> LateSamConfig:
        """Check the options and fill in the switch epochs that follow ``epochs``."""
        if not 0 <= self.label_noise < 1:
            raise UserError(f"label_noise must be in [0, 1), got {self.label_noise}")
        if self.epochs < 2:
            raise UserError(f"the experiment needs at least 2 epochs, got {self.epochs}")
        if self.switch_epochs is None:
            self.switch_epochs = sorted(
                {
                    min(self.epochs - 1, max(1, round(f * self.epochs)))
                    for f in (0.75, 0.85, 0.9, 0.95)
                }
            )
        if self.sam_sgd_epochs is None:
            self.sam_sgd_epochs = [max(1, self.epochs // 2)] if self.full_sam else []
        if not self.seeds:
            raise UserError("give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds {self.seeds} repeat a seed")
        for t0 in self.switch_epochs:
            if not 0 < t0 < self.epochs:
                raise UserError(
                    f"switch epoch {t0} must be between 1 and {self.epochs - 1} "
                    f"(--epochs {self.epochs})"
                )
        for t1 in self.sam_sgd_epochs:
            if not 0 < t1 < self.epochs:
                raise UserError(f"SAM->SGD epoch {t1} must be between 1 and {self.epochs - 1}")
        if self.sam_sgd_epochs and not self.full_sam:
            raise UserError("SAM->SGD arms branch from the full-SAM run: keep full_sam on")
        if self.bn_mode not in ("eval", "train"):
            raise UserError(f"bn_mode must be eval or train, not {self.bn_mode!r}")
        if self.escape_bn_mode not in ("auto", "eval", "train"):
            raise UserError(
                f"escape_bn_mode must be auto, eval or train, not {self.escape_bn_mode!r}"
            )
        if not self.escape_divergence_factor > 1:
            raise UserError(
                f"escape_divergence_factor must be > 1, got {self.escape_divergence_factor}"
            )
        radii = self.sharpness_radii
        if (
            not radii
            or any(not (r >= 0 and math.isfinite(r)) for r in radii)
            or len(set(radii)) != len(radii)
        ):
            raise UserError(f"sharpness_rho {self.sharpness_rho} must be distinct radii >= 0")
        if self.samples < 1 or self.interpolation_points < 2 or self.escape_steps < 1:
            raise UserError(
                "samples >= 1, interpolation_points >= 2 and escape_steps >= 1 are needed"
            )
        if self.escape and not self.switch_epochs:
            raise UserError(
                "the escape curve starts at the latest switch epoch: give switch_epochs"
            )
        return self
