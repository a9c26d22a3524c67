"""Losses by name. Every loss returns the mean over the batch.

* ``cross-entropy``: ``torch.nn.functional.cross_entropy`` (optionally label-smoothed).
* ``mse``: ``torch.nn.MSELoss()`` semantics, the mean over all ``N x C`` elements,
  ``(1 / (N C)) sum_n ||f(x_n) - y_n||^2``: a user's own ``nn.MSELoss`` gives the same
  value, and so the same eigenvalues, traces and sharpness.
* ``half-sse``: the convention of the theory papers (Cohen et al., "Gradient descent on
  neural networks typically occurs at the edge of stability", ICLR 2021):
  ``(1 / N) sum_n 0.5 ||f(x_n) - y_n||^2``, i.e. ``C / 2`` times ``mse``.

Integer targets become one-hot vectors for the squared errors.

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

LOSS_NAMES = ("cross-entropy", "mse", "half-sse")


def _as_outputs(targets: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    if targets.dtype in (torch.int64, torch.int32):
        return F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
    return targets.to(outputs.dtype)


def make_loss(name: str = "cross-entropy", label_smoothing: float = 0.0) -> LossFn:
    """The loss called ``name`` (one of :data:`LOSS_NAMES`; see the module docstring)."""
    if name == "cross-entropy":

        def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            if outputs.ndim == 3 and targets.ndim == 2 and not targets.is_floating_point():
                outputs, targets = outputs.flatten(0, 1), targets.flatten()
            return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)

        return cross_entropy
    if name == "mse":

        def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(outputs, _as_outputs(targets, outputs))  # mean over all elements

        return mse
    if name == "half-sse":

        def half_sse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            squared = (outputs - _as_outputs(targets, outputs)) ** 2
            return 0.5 * squared.flatten(1).sum(dim=1).mean()

        return half_sse
    raise UserError(f"unknown loss {name!r}: use {', '.join(LOSS_NAMES)}")
