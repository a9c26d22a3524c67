"""``landscape.load``: from a checkpoint file to a model, its data and what is known about it.

The notebook's way in. It goes through :func:`landscape.loading.context.build_context`, the
loading path of every analysis command and of the experiment, so a checkpoint that
``landscape hessian CKPT --arch ... --dataset ...`` reads, ``landscape.load(CKPT, arch=...,
dataset=...)`` reads the same way: the same formats and safety rules, the same architecture
resolution and mismatch reports, the same data and normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from landscape.data import Data

__all__ = ["Loaded", "load"]


class Loaded(NamedTuple):
    """``model, data, metadata = landscape.load(path)``."""

    model: nn.Module
    """The network with the checkpoint's weights, on ``device``, in eval mode."""
    data: Data
    """The dataset it is analysed on: ``data.split("train")`` -> ``(inputs, labels)``."""
    metadata: dict[str, Any]
    """path, name (the result name, ``<run>_<stem>``), sha256, format, arch, epoch, phase,
    config (the training run's), dataset, num_classes, loss, device, dtype, load_report."""


def load(
    path: str | Path,
    *,
    arch: str | None = None,
    arch_kwargs: dict | str | None = None,
    num_classes: int | None = None,
    dataset: str | None = None,
    data: str | None = None,
    block_size: int | None = None,
    image_size: int | None = None,
    columns: str | None = None,
    data_dir: str | Path | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    download: bool = False,
    trust_checkpoint: bool = False,
    strict: bool = True,
    ema: bool = False,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
) -> Loaded:
    """Load the checkpoint at ``path`` with its data, as the analysis commands do.

    Every keyword is the command-line flag of the same name (``arch`` is ``--arch``,
    ``trust_checkpoint`` is ``--trust-checkpoint``, ``strict=False`` is ``--non-strict``):
    landscape checkpoints need none of them; a plain state_dict needs ``arch`` (a registry
    name, ``torchvision:NAME``, ``timm:NAME``, ``hf:NAME`` or ``file.py:factory``; a model
    folder needs none) and usually ``dataset``/``data`` (``data="tokens:FILE"`` with
    ``block_size`` for a language model, ``data="imagefolder:DIR"`` with ``image_size``,
    ``data="hf-dataset:DIR"`` with ``columns``).
    Files are read with ``torch.load(weights_only=True)`` unless ``trust_checkpoint=True``.
    ``device`` takes ``"auto"`` like ``--device``; the data stay on the CPU.

    Bad input raises :class:`landscape.errors.UserError` with the message the command line
    would print.
    """
    from landscape.loading.context import AnalysisRequest, build_context
    from landscape.loading.loader import DataSource, ModelSource

    model_source = ModelSource(
        arch=arch,
        arch_kwargs=arch_kwargs,
        num_classes=num_classes,
        trust=trust_checkpoint,
        strict=strict,
        ema=ema,
    )
    data_source = DataSource(
        dataset=dataset,
        data=data,
        block_size=block_size,
        image_size=image_size,
        columns=columns,
        data_dir=None if data_dir is None else str(data_dir),
        mean=None if mean is None else tuple(mean),
        std=None if std is None else tuple(std),
        download=download,
    )
    # a notebook is one process: no process group is joined even under torchrun
    context = build_context(
        AnalysisRequest(
            checkpoints=(path,),
            model=model_source,
            data=data_source,
            device=device,
            dtype=dtype,
            distributed=False,
        )
    )
    (target,), loaded_data = context.targets, context.data
    torch_device, torch_dtype = context.device, context.dtype
    metadata = {
        "path": target.path,
        "name": target.stem,
        "sha256": target.sha256,
        "format": target.checkpoint.format,
        "arch": target.arch,
        "epoch": target.epoch,
        "phase": target.phase,
        "config": target.config,
        "dataset": loaded_data.name,
        "num_classes": loaded_data.num_classes,
        "loss": data_source.loss,
        "device": torch_device,
        "dtype": torch_dtype,
        "load_report": target.load_report,
    }
    return Loaded(target.model, loaded_data, metadata)
