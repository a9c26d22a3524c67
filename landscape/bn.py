"""BatchNorm handling for analysis: which statistics a forward pass uses, without side effects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, BN_TYPES) for m in model.modules())


@contextmanager
def analysis_mode(model: nn.Module, bn_mode: str = "eval") -> Iterator[nn.Module]:
    """Put ``model`` in evaluation mode, with BatchNorm in ``eval`` (running statistics)
    or ``train`` mode (batch statistics, as in the SAM paper's code).

    Dropout is always off. Running statistics are never changed: in ``train`` mode they
    are saved and restored, so an analysis leaves the model exactly as it found it.
    The model's previous train/eval flags are restored on exit.
    """
    if bn_mode not in ("eval", "train"):
        raise ValueError(f"bn_mode must be 'eval' or 'train', not {bn_mode!r}")
    flags = {m: m.training for m in model.modules()}
    saved = {}
    model.eval()
    if bn_mode == "train":
        for module in model.modules():
            if isinstance(module, BN_TYPES):
                module.train()
                saved[module] = [b.detach().clone() for b in module.buffers()]
    try:
        yield model
    finally:
        with torch.no_grad():
            for module, buffers in saved.items():
                for live, kept in zip(module.buffers(), buffers):
                    live.copy_(kept)
        for module, flag in flags.items():
            module.train(flag)
