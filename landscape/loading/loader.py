"""The one loading path of every analysis command: checkpoint files -> models + data.

``hessian``, ``surface``, ``interpolate``, ``sharpness``, ``escape`` and ``info`` all call
:func:`load_models`, so a checkpoint that one command reads, every command reads, with the
same safety rules (no unpickling of code unless trusted), the same architecture resolution,
the same mismatch reports and the same data. :func:`provenance` gives the attributes that
every result group carries (docs/file-format.md, "Result files").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.data import Data, load_dataset, with_label_noise
from landscape.errors import UserError
from landscape.loading.architecture import build_architecture, parse_kwargs
from landscape.loading.checkpoint import (
    LoadedCheckpoint,
    check_finite,
    file_sha256,
    load_checkpoint,
)
from landscape.loading.recorded import vet_recorded_arch
from landscape.loading.state_fit import align_prefix, fit_state_dict, mismatch_summary
from landscape.loading.tokens import is_token_spec
from landscape.store import checkpoint_label, safe_group_name

__all__ = [
    "DataSource",
    "ModelSource",
    "LoadedModel",
    "align_prefix",
    "build_model_for",
    "check_model_fits_data",
    "fit_state_dict",
    "load_data",
    "load_models",
    "mismatch_summary",
    "provenance",
    "renormalise",
]

log = logging.getLogger(__name__)

DEFAULT_DATASET = "digits"


@dataclass
class ModelSource:
    """How to turn a checkpoint into a model (the CLI's model flags)."""

    arch: str | None = None
    arch_kwargs: dict | None = None
    num_classes: int | None = None
    trust: bool = False
    strict: bool = True
    ema: bool = False


@dataclass
class DataSource:
    """Where the analysis data comes from (the CLI's data flags)."""

    dataset: str | None = None
    data: str | None = None  # path/to/file.py:factory, package.module:factory or tokens:FILE
    block_size: int | None = None  # tokens per block of --data tokens:FILE
    data_dir: str | None = None
    loss: str = "cross-entropy"
    mean: tuple[float, ...] | None = None  # input normalisation overriding the checkpoint's
    std: tuple[float, ...] | None = None
    download: bool = False


@dataclass
class LoadedModel:
    """One checkpoint, loaded: the model (on the device, in eval mode) and where it came from."""

    path: Path
    sha256: str
    model: nn.Module
    arch: str
    epoch: int | None
    phase: str | None
    config: dict
    checkpoint: LoadedCheckpoint  # its state_dict is emptied: the weights are in ``model``
    label: str | None = None  # the result name, <run>_<stem> (landscape.store.checkpoint_label)
    load_report: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """Group name for this checkpoint's results (``hessian/<run>_<stem>``)."""
        return safe_group_name(self.label or checkpoint_label(self.path))


def load_models(
    paths: list[str | Path] | tuple[str | Path, ...] | str | Path,
    model_source: ModelSource,
    data_source: DataSource,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[list[LoadedModel], Data]:
    """Load every checkpoint in ``paths`` and the data to analyse them on.

    Data come from ``--data``/``--dataset`` when given, else from the first checkpoint's
    config, else digits. Every model is checked against the data with one forward pass on
    two examples, so a shape mismatch is a clear error before any expensive work.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no checkpoint given")
    device = torch.device(device)
    # Cheap checks first: every file is read (safely) before data are loaded.
    loaded = [load_checkpoint(p, trust=model_source.trust, ema=model_source.ema) for p in paths]
    data = load_data(data_source, loaded)
    targets = []
    for path, ckpt in zip(paths, loaded):
        model, arch, report = build_model_for(ckpt, model_source, data)
        if device.type == "cuda":
            from landscape.loading.architecture import module_bytes
            from landscape.memory import check_fits

            size = module_bytes(model) * dtype.itemsize // 4  # float32 built, cast to dtype
            check_fits(size, f"model {arch} from {path}", device)
        model = model.to(device=device, dtype=dtype).eval()
        # The weights now live in the model; dropping the checkpoint's copy halves the memory
        # of long trajectories (the tensor count stays in load_report).
        ckpt.state_dict = {}
        check_model_fits_data(model, data, path, arch, data_source.loss, device, dtype)
        targets.append(
            LoadedModel(
                path=path,
                sha256=file_sha256(ckpt.path),  # a model folder's weights file
                model=model,
                arch=arch,
                epoch=ckpt.epoch,
                phase=ckpt.phase,
                config=ckpt.config,
                checkpoint=ckpt,
                label=checkpoint_label(path),
                load_report=report,
            )
        )
    return targets, data


# ----------------------------------------------------------------------------------------- data


def load_data(source: DataSource, checkpoints: list[LoadedCheckpoint] | None = None) -> Data:
    """The analysis data from the flags, else the checkpoints' config, else digits."""
    checkpoints = checkpoints or []
    if source.data and source.dataset:
        raise UserError("give either --dataset or --data, not both")
    config = next((c.config for c in checkpoints if c.config), {})
    if source.block_size is not None and not is_token_spec(source.data):
        raise UserError("--block-size applies to --data tokens:FILE only")
    if is_token_spec(source.data):
        data = _load_tokens(source, checkpoints)
    elif source.data:
        from landscape.loading.user_data import load_user_data

        data = load_user_data(source.data)
    else:
        name = source.dataset
        if name is None:
            names = {str(c.config["dataset"]) for c in checkpoints if c.config.get("dataset")}
            if len(names) > 1:
                raise UserError(
                    "the checkpoints were trained on different datasets "
                    f"({', '.join(sorted(names))}); "
                    "choose one with --dataset"
                )
            name = names.pop() if names else None
        if name is None:
            name = DEFAULT_DATASET
            if checkpoints:
                log.info("no --dataset given and the checkpoint does not name one; using %s", name)
        data_dir = source.data_dir or (
            config.get("data_dir") if name == config.get("dataset") else None
        )
        data = load_dataset(name, data_dir, download=source.download)
        data = _training_labels(data, config if name == config.get("dataset") else {})
    mean, std = source.mean, source.std
    if mean is None and std is None and not source.data:
        mean, std = _config_normalisation(config)
    if mean is not None or std is not None:
        data = renormalise(data, mean, std)
    return data


def _training_labels(data: Data, config: dict[str, Any]) -> Data:
    """The labels the checkpoint was trained on: its ``label_noise`` (``train --label-noise``)
    applied again, so that train-split analyses measure the loss it minimised."""
    fraction = float(config.get("label_noise") or 0.0)
    if not fraction:
        return data
    seed = int(config.get("label_noise_seed") or 0)
    log.info(
        "training labels with the checkpoint's label noise %g (seed %d), as trained; "
        "test labels clean",
        fraction,
        seed,
    )
    return with_label_noise(data, fraction, seed)


def _load_tokens(source: DataSource, checkpoints: list[LoadedCheckpoint]) -> Data:
    """Token blocks; the default block size is the first model's context, at most 256."""
    from landscape.loading.external import config_context_length
    from landscape.loading.tokens import DEFAULT_BLOCK_SIZE, load_token_data

    # Only a model folder given on the command line, never a folder named inside a file.
    folder = next(
        (
            c.config["model_folder"]
            for c in checkpoints
            if c.format.endswith("-folder") and c.config.get("model_folder")
        ),
        None,
    )
    block_size = source.block_size
    if block_size is None:
        contexts = [
            config_context_length(c.config["arch_kwargs"])
            for c in checkpoints
            if isinstance(c.config.get("arch_kwargs"), dict)
        ]
        block_size = min([DEFAULT_BLOCK_SIZE] + [n for n in contexts if n])
    return load_token_data(source.data, block_size, tokenizer_folder=folder)


def _config_normalisation(config: dict) -> tuple[Any, Any]:
    norm = config.get("normalization") or config.get("normalisation") or {}
    mean = config.get("mean", norm.get("mean") if isinstance(norm, dict) else None)
    std = config.get("std", norm.get("std") if isinstance(norm, dict) else None)
    return mean, std


def renormalise(data: Data, mean: Any, std: Any) -> Data:
    """``data`` with inputs normalised by ``(x - mean) / std`` per channel instead of its own
    normalisation (raw values are recovered from the dataset's mean/std first)."""
    channels = data.input_shape[0] if data.input_shape else 1
    new_mean = _per_channel(mean if mean is not None else data.mean or 0.0, channels, "mean")
    new_std = _per_channel(std if std is not None else data.std or 1.0, channels, "std")
    if any(s <= 0 for s in new_std):
        raise UserError(f"normalisation std must be positive, got {new_std}")
    old_mean = _per_channel(data.mean or 0.0, channels, "mean")
    old_std = _per_channel(data.std or 1.0, channels, "std")
    if old_mean == new_mean and old_std == new_std:
        return data

    def convert(x: torch.Tensor) -> torch.Tensor:
        shape = (1, channels) + (1,) * (x.ndim - 2)
        om, os_ = torch.tensor(old_mean).view(shape), torch.tensor(old_std).view(shape)
        nm, ns = torch.tensor(new_mean).view(shape), torch.tensor(new_std).view(shape)
        return ((x * os_ + om - nm) / ns).to(x.dtype)

    fields = dict(data.__dict__)
    fields.update(
        train_x=convert(data.train_x),
        test_x=data.test_x if data.test_x is data.train_x else convert(data.test_x),
        mean=new_mean,
        std=new_std,
    )
    if data.test_x is data.train_x:
        fields["test_x"] = fields["train_x"]
    return type(data)(**fields)


def _per_channel(value: Any, channels: int, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),) * channels
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"normalisation {what} {value!r} is not a list of numbers") from exc
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise UserError(
            f"normalisation {what} has {len(values)} values but the inputs have {channels} channels"
        )
    return values


# ---------------------------------------------------------------------------------------- model


def build_model_for(
    ckpt: LoadedCheckpoint, source: ModelSource, data: Data
) -> tuple[nn.Module, str, dict]:
    """The model for ``ckpt``: its architecture built fresh and the weights loaded into it."""
    arch = source.arch or ckpt.arch
    if ckpt.module is not None and source.arch is None:
        # A trusted whole module (pickled or TorchScript) is its own architecture.
        check_finite(ckpt.state_dict, ckpt.path)
        return ckpt.module, ckpt.arch or type(ckpt.module).__name__, {}
    if arch is None:
        raise UserError(
            f"checkpoint {ckpt.path} ({ckpt.format}) does not say which architecture it holds; "
            "give --arch (a registry name, torchvision:NAME or file.py:factory)"
        )
    check_finite(ckpt.state_dict, ckpt.path)
    kwargs = parse_kwargs(source.arch_kwargs)
    if source.arch is None:
        # The file's own say-so: built-in builders and plain shape arguments only (recorded.py).
        recorded = ckpt.config.get("arch_kwargs")
        recorded = vet_recorded_arch(
            arch,
            recorded if isinstance(recorded, dict) else {},
            source=_recorded_source(ckpt),
            trust=source.trust,
        )
        kwargs = {**recorded, **kwargs}
    num_classes = source.num_classes or _config_int(ckpt.config, "num_classes") or data.num_classes
    # Strict loading fills every parameter from the file: a model needing more is refused
    # before it is built (every tensor counts: tied weights are stored once, BatchNorm
    # counters and integer tensors only make the bound looser).
    numbers = sum(t.numel() for t in ckpt.state_dict.values())
    model = build_architecture(
        arch,
        input_shape=tuple(data.input_shape),
        num_classes=num_classes,
        kwargs=kwargs,
        explicit_num_classes=source.num_classes is not None,
        weights=(numbers, _recorded_source(ckpt)) if source.strict else None,
    )
    state = ckpt.state_dict
    if arch.startswith("hf:"):
        from landscape.loading.external import hf_state_dict

        state = hf_state_dict(model, state)  # save_pretrained's names -> the model's
    report = fit_state_dict(model, state, strict=source.strict, path=ckpt.path, arch=arch)
    return model, arch, report


def _recorded_source(ckpt: LoadedCheckpoint) -> str:
    """Where a checkpoint's architecture is written, for messages."""
    folder = ckpt.config.get("model_folder") if ckpt.format.endswith("-folder") else None
    return f"model folder {folder}" if folder else f"checkpoint {ckpt.path}"


def _config_int(config: dict, key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_model_fits_data(
    model: nn.Module,
    data: Data,
    path: str | Path,
    arch: str,
    loss: str = "cross-entropy",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> None:
    """One forward pass on two examples: the inputs fit the model and the outputs the targets."""
    x = data.train_x[:2].to(device=device, dtype=dtype)
    y = data.train_y[:2]
    source = f"dataset {data.name}" if data.name != "custom" else "the --data factory"
    language_model = _check_language_model(model, data, path, arch)
    if language_model and loss != "cross-entropy":
        raise UserError(f"a language model's loss is next-token cross-entropy, not {loss!r}")
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # shape errors surface as RuntimeError, ValueError, IndexError ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"model {arch} from {path} does not accept inputs of shape {list(data.input_shape)} "
            f"from {source} ({text}); check --arch, --dataset/--data"
        ) from exc
    if language_model:
        if not isinstance(out, torch.Tensor) or tuple(out.shape[:2]) != tuple(y.shape):
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UserError(
                f"model {arch} from {path} returns {shape}, not (blocks, tokens, vocabulary) logits"
            )
        return
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"model {arch} from {path} returns {shape}, not (batch, classes) logits")
    classes = out.shape[1]
    if y.is_floating_point():
        if tuple(y.shape[1:]) != (classes,):
            raise UserError(
                f"model {arch} from {path} has {classes} outputs but the targets of {source} "
                f"have shape {list(y.shape[1:])}"
            )
    elif classes < data.num_classes or (data.name != "custom" and classes != data.num_classes):
        raise UserError(
            f"model {arch} from {path} has {classes} outputs but {source} has {data.num_classes} "
            "classes; check --arch/--num-classes or the dataset"
        )
    from landscape.losses import LOSS_NAMES

    if loss not in LOSS_NAMES:
        raise UserError(f"unknown loss {loss!r}: use {', '.join(LOSS_NAMES)}")


def _check_language_model(model: nn.Module, data: Data, path: str | Path, arch: str) -> bool:
    """Whether ``model`` is analysed as a language model (token blocks in, per-token logits
    out). For a Transformers one, the blocks must lie within its vocabulary and context
    (checked before any forward pass); the user's own model on token blocks is taken as one."""
    from landscape.loading.external import language_model_limits

    limits = language_model_limits(model)
    tokens = data.name.startswith("tokens:")
    if limits is None:
        return tokens
    if not tokens:
        raise UserError(
            f"model {arch} from {path} is a causal language model; give its text as "
            "--data tokens:FILE (nanoGPT .bin, .npy or text)"
        )
    vocabulary, context = limits
    if data.num_classes > vocabulary:
        raise UserError(
            f"--data {data.name} has token ids up to {data.num_classes - 1}, beyond the "
            f"vocabulary of {vocabulary} of model {arch} from {path}; "
            "was it tokenised for this model?"
        )
    block = data.input_shape[0]
    if context is not None and block > context:
        raise UserError(
            f"--block-size {block} is above the context of {context} tokens of model {arch} "
            f"from {path}; use --block-size {context} or less"
        )
    return True


# ----------------------------------------------------------------------------------- provenance


def provenance(
    target: LoadedModel,
    *,
    split: str,
    samples: int,
    bn_mode: str,
    dtype: str,
    seed: int,
    seconds: float,
    config: dict,
) -> dict:
    """Provenance attributes of docs/file-format.md for :func:`landscape.store.set_provenance`."""
    return {
        "checkpoint": str(target.path),
        "checkpoint_sha256": target.sha256,
        "checkpoint_format": target.checkpoint.format,
        "arch": target.arch,
        "epoch": target.epoch,
        "phase": target.phase,
        "split": split,
        "samples": int(samples),
        "bn_mode": bn_mode,
        "dtype": dtype,
        "seed": int(seed),
        "seconds": float(seconds),
        "config": config,
    }
