"""The run config of ``landscape train``: defaults, validation, the default run name.

A :class:`TrainConfig` is *resolved*: every value is explicit (milestones, SAM switch
epochs), so a checkpoint's stored config alone reproduces the run. Built-in defaults
are the offline digits run; the paper's CIFAR settings live in ``configs/*.toml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.errors import UserError
from landscape.train.schedule import default_milestones

SCHEDULES = ("step", "cosine", "constant")
MOMENTUM_ACROSS_SWITCH = ("keep", "reset")
AUGMENTATIONS = ("default", "none", "crop-flip", "crop-flip-cutout")
# Where SAM's ascent gradient comes from under torchrun: the all-reduced gradient of the global
# batch, or each rank's own (m-sharpness with m = the per-rank batch, Foret et al. 2021, sec. 4.1).
SAM_ASCENTS = ("global", "per-rank")
# Fields that may differ between the runs writing one run folder: they do not change
# the trajectory (where the data is, how often to save, which collective library).
RUNTIME_FIELDS = ("data_dir", "save_every", "backend")


@dataclass
class TrainConfig:
    dataset: str = "digits"
    arch: str = "cnn-bn"  # a registry name or timm:NAME
    arch_kwargs: dict = field(default_factory=dict)  # timm:NAME's keyword arguments
    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "step"
    milestones: list[int] = field(default_factory=lambda: [30])
    gamma: float = 0.1
    sam_start: int | None = 45  # None: never switch to SAM
    sam_end: int | None = None  # None: SAM to the end
    rho: float = 0.05
    adaptive: bool = False
    sam_ascent: str = "global"  # SAM_ASCENTS
    sync_bn: bool = False  # SyncBatchNorm across ranks instead of per-rank batch statistics
    momentum_across_switch: str = "keep"
    label_smoothing: float = 0.0
    # A fraction of training labels replaced by another class (landscape.data.with_label_noise),
    # drawn with label_noise_seed: the same noisy labels for every seed of an experiment.
    label_noise: float = 0.0
    label_noise_seed: int = 0
    augment: str = "default"  # "default": the dataset's standard augmentation
    seed: int = 0
    dtype: str = "float32"
    save_every: int = 5
    data_dir: str | None = None
    from_checkpoint: str | None = None  # branch point: another run's checkpoint
    from_epoch: int | None = None
    # How the run was split (set by the loop from its Partition): ranks of torchrun and the
    # collective library; batch_size is the global batch, batch_size // world_size per rank.
    world_size: int = 1
    backend: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """From a stored config; keys this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the trajectory-shaping fields in which two configs differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k]]

    @property
    def optimizer_name(self) -> str:
        return "asam" if self.adaptive else "sam"

    def run_name(self) -> str:
        """e.g. ``digits-cnn-bn-sam30-s0``, ``cifar10-resnet20-asam120-150-s1``,
        ``cifar10-resnet20-sam100-s0-from100`` (a branch), ``digits-mlp-sgd-s0``."""
        if self.sam_start is None:
            tag = "sgd"
        else:
            tag = f"{self.optimizer_name}{self.sam_start}"
            if self.sam_end is not None:
                tag += f"-{self.sam_end}"
        arch = self.arch.replace(":", "-")  # timm:vit_tiny_patch16_224 -> a folder name
        name = f"{self.dataset}-{arch}-{tag}-s{self.seed}"
        if self.from_epoch is not None:
            name += f"-from{self.from_epoch:03d}"
        return name


def _parse_sam_epoch(value: Any, flag: str) -> int | None | str:
    """``"never"``/``"none"`` -> None, ``"auto"`` kept, numbers -> int."""
    if value is None or (isinstance(value, str) and value.lower() in ("never", "none")):
        return None
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    try:
        return _as_int(value, flag)
    except UserError as exc:
        raise UserError(
            f"{flag} must be an epoch number, 'auto' or 'never', not {value!r}"
        ) from exc


def resolve_config(overrides: dict[str, Any], base: dict[str, Any] | None = None) -> TrainConfig:
    """Built-in defaults (or ``base``, a stored config) updated with ``overrides``, then
    validated and made explicit.

    ``overrides`` holds only what the user set (flags, TOML file); ``None`` values are
    ignored. ``sam_start`` accepts ``"auto"`` (SAM for the last quarter of the epochs)
    and ``"never"``; ``milestones`` not given follow ``epochs`` (half-way), unless
    inherited from ``base``.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise UserError(f"unknown training option(s): {', '.join(unknown)}")
    values = TrainConfig().to_dict() if base is None else TrainConfig.from_dict(base).to_dict()
    if base is None and "milestones" not in given:
        values["milestones"] = None  # follow epochs
    if base is None and "sam_start" not in given:
        values["sam_start"] = "auto"
    values.update(given)

    epochs = _as_int(values["epochs"], "--epochs")
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    values["epochs"] = epochs
    if values["milestones"] is None:
        values["milestones"] = default_milestones(epochs)
    values["milestones"] = _parse_milestones(values["milestones"], epochs)

    sam_start = _parse_sam_epoch(values["sam_start"], "--sam-start")
    if sam_start == "auto":
        sam_start = epochs - max(1, epochs // 4)
    sam_end = _parse_sam_epoch(values["sam_end"], "--sam-end")
    if sam_end == "auto":
        sam_end = None
    if sam_start is not None and not 0 <= sam_start <= epochs:
        raise UserError(
            f"--sam-start {sam_start} is beyond --epochs {epochs}: SAM must start at an epoch "
            f"between 0 and {epochs} (or use --sam-start never)"
        )
    if sam_end is not None:
        if sam_start is None:
            raise UserError("--sam-end needs --sam-start")
        if not sam_start < sam_end <= epochs:
            raise UserError(
                f"--sam-end {sam_end} must be after --sam-start {sam_start} "
                f"and at most --epochs {epochs}"
            )
    values["sam_start"], values["sam_end"] = sam_start, sam_end

    values["batch_size"] = _as_int(values["batch_size"], "--batch-size")
    values["seed"] = _as_int(values["seed"], "--seed")
    values["save_every"] = _as_int(values["save_every"], "--save-every")
    values["label_noise_seed"] = _as_int(values["label_noise_seed"], "--label-noise-seed")
    for key in ("lr", "momentum", "weight_decay", "gamma", "rho", "label_smoothing", "label_noise"):
        values[key] = float(values[key])
    _check(
        values["batch_size"] >= 1, f"--batch-size must be at least 1, got {values['batch_size']}"
    )
    _check(values["lr"] > 0, f"--lr must be > 0, got {values['lr']}")
    _check(0 <= values["momentum"] < 1, f"--momentum must be in [0, 1), got {values['momentum']}")
    _check(
        values["weight_decay"] >= 0, f"--weight-decay must be >= 0, got {values['weight_decay']}"
    )
    _check(values["gamma"] > 0, f"--gamma must be > 0, got {values['gamma']}")
    _check(
        values["rho"] >= 0,
        f"--rho must be >= 0 (the radius of SAM's neighbourhood), got {values['rho']}",
    )
    _check(
        0 <= values["label_smoothing"] < 1,
        f"--label-smoothing must be in [0, 1), got {values['label_smoothing']}",
    )
    _check(
        0 <= values["label_noise"] < 1,
        f"--label-noise must be in [0, 1), got {values['label_noise']}",
    )
    _check(values["save_every"] >= 0, f"--save-every must be >= 0, got {values['save_every']}")
    _check(values["schedule"] in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}")
    _check(
        values["momentum_across_switch"] in MOMENTUM_ACROSS_SWITCH,
        f"--momentum-across-switch must be one of {', '.join(MOMENTUM_ACROSS_SWITCH)}",
    )
    _check(
        values["augment"] in AUGMENTATIONS, f"--augment must be one of {', '.join(AUGMENTATIONS)}"
    )
    _check(values["dtype"] in ("float32", "float64"), "--dtype must be float32 or float64")
    _check(
        values["sam_ascent"] in SAM_ASCENTS,
        f"--sam-ascent must be one of {', '.join(SAM_ASCENTS)}",
    )
    values["sync_bn"] = bool(values["sync_bn"])
    _check(
        not (values["nesterov"] and values["momentum"] == 0),
        "--nesterov needs a momentum > 0",
    )
    # The registry's spelling (VGG16_BN -> vgg16-bn), so run names and config comparisons agree;
    # timm names are the library's own (underscores and case kept).
    arch = str(values["arch"]).strip()
    values["arch"] = arch if arch.startswith("timm:") else arch.lower().replace("_", "-")
    if isinstance(values["arch_kwargs"], str):
        from landscape.loading.architecture import parse_kwargs

        values["arch_kwargs"] = parse_kwargs(values["arch_kwargs"])
    _check(isinstance(values["arch_kwargs"], dict), "--arch-kwargs must be a JSON object")
    if base is not None and "arch_kwargs" not in given:
        # A stored config is a file's say-so: no loading options (recorded.py).
        from landscape.loading.recorded import vet_recorded_arch

        values["arch_kwargs"] = vet_recorded_arch(
            values["arch"], values["arch_kwargs"], source="the stored run config", trust_flag=False
        )
    _check(
        not values["arch_kwargs"] or values["arch"].startswith("timm:"),
        "--arch-kwargs applies to --arch timm:NAME only in training",
    )
    values["dataset"] = str(values["dataset"]).strip().lower()
    if values["data_dir"] is not None:
        values["data_dir"] = str(values["data_dir"])
    return TrainConfig(**values)


def check_world_size(config: TrainConfig, world_size: int) -> None:
    """``batch_size`` is the global batch: it must split evenly over the ranks."""
    rest = config.batch_size % world_size
    if rest:
        below = config.batch_size - rest
        raise UserError(
            f"--batch-size {config.batch_size} is the global batch and must be divisible by the "
            f"{world_size} ranks (each takes batch-size / {world_size}): use e.g. "
            f"{below or world_size} or {below + world_size}"
        )


def _as_int(value: Any, flag: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{flag} must be a whole number, got {value!r}") from exc
    if isinstance(value, float) and number != value:
        raise UserError(f"{flag} must be a whole number, got {value!r}")
    return number


def _parse_milestones(value: Any, epochs: int) -> list[int]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    milestones = [_as_int(v, "--milestones") for v in value]
    if milestones != sorted(set(milestones)) or any(not 0 < m <= epochs for m in milestones):
        raise UserError(
            f"--milestones {','.join(map(str, milestones))} must be increasing epochs "
            f"between 1 and {epochs}"
        )
    return milestones


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def check_branch_point(
    config: TrainConfig, history: list[dict[str, Any]], from_epoch: int, source: Path
) -> None:
    """A ``--from`` branch must agree with what the source run already did up to ``from_epoch``."""
    from landscape.train.schedule import phase

    if config.epochs <= from_epoch:
        raise UserError(
            f"--epochs {config.epochs} leaves nothing to train after {source} "
            f"(epoch {from_epoch}); ask for more than {from_epoch} epochs"
        )
    for record in history:
        epoch = int(record["epoch"])  # completed epochs, so this is epoch index epoch-1
        if epoch > from_epoch:
            continue
        wanted = phase(epoch - 1, config.sam_start, config.sam_end)
        if record.get("phase") != wanted:
            raise UserError(
                f"{source} was trained with {record.get('phase')} in epoch {epoch}, "
                f"but the branch's --sam-start/--sam-end put {wanted} there; "
                f"SAM can only start at epoch {from_epoch} or later"
            )
