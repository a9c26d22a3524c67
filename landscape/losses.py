"""Losses by name. Every loss returns the mean over the batch.

A language model's logits are ``(blocks, positions, vocabulary)`` against next-token targets
``(blocks, positions)``; cross-entropy then averages over every position of every block, the
next-token loss of the token stream (all blocks have the same length, so the batch mean of
the per-block means is the same number).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from landscape.errors import UserError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_loss(name: str = "cross-entropy", label_smoothing: float = 0.0) -> LossFn:
    """``cross-entropy`` (optionally label-smoothed) or ``mse`` against one-hot targets."""
    if name == "cross-entropy":

        def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            if outputs.ndim == 3 and targets.ndim == 2 and not targets.is_floating_point():
                outputs, targets = outputs.flatten(0, 1), targets.flatten()
            return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)

        return cross_entropy
    if name == "mse":

        def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            if targets.dtype in (torch.int64, torch.int32):
                targets = F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
            # Mean over examples of the squared error summed over outputs.
            return 0.5 * ((outputs - targets) ** 2).sum(dim=-1).mean()

        return mse
    raise UserError(f"unknown loss {name!r}: use cross-entropy or mse")
