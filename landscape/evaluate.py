"""Loss and accuracy of a model on in-memory tensors, averaged exactly over examples."""

from __future__ import annotations

import torch
from torch import nn

from landscape.losses import LossFn


@torch.no_grad()
def evaluate(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn,
    batch_size: int = 1000,
) -> tuple[float, float]:
    """Mean loss and accuracy over all examples; the model's current mode is used as is.

    Batches are weighted by their size, so an uneven last batch counts correctly. For a
    language model (targets ``(blocks, positions)``) the accuracy is next-token accuracy.
    """
    loss, acc = (
        evaluate_sums(model, inputs, targets, loss_fn, batch_size) / inputs.shape[0]
    ).tolist()
    return loss, acc


@torch.no_grad()
def evaluate_sums(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn,
    batch_size: int = 1000,
) -> torch.Tensor:
    """``[sum of loss, correct count]`` (float64, on the device): summed there so that a GPU is
    not synchronised with the host per batch; the caller reads it back once. A language
    model's block counts as the share of its positions predicted correctly."""
    # One (2,) float64 tensor per batch, added in batch order: the same sums, bit for bit, as
    # accumulating into a zero vector element by element, in about half the small operations
    # (on a 10-20 ms pass each one is a measurable share of a grid point, issue 18).
    total = None
    for start in range(0, inputs.shape[0], batch_size):
        x = inputs[start : start + batch_size]
        y = targets[start : start + batch_size]
        out = model(x)
        part = torch.stack((loss_fn(out, y).double() * x.shape[0], correct_count(out, y)))
        total = part if total is None else total + part
    if total is None:
        return torch.zeros(2, dtype=torch.float64, device=inputs.device)
    return total


def correct_count(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Examples classified correctly (float64 scalar): the argmax of ``out`` against integer
    labels, or against the argmax of soft targets; a language model's block counts as the share
    of its positions predicted correctly."""
    if y.dtype in (torch.int64, torch.int32):
        hits = out.argmax(dim=-1) == y  # (batch,) or (batch, positions)
        count = hits.sum(dtype=torch.float64)
        positions = hits[0].numel() if hits.ndim > 1 and hits.shape[0] else 1
        return count / positions if positions > 1 else count
    return (out.argmax(dim=-1) == y.argmax(dim=-1)).sum(dtype=torch.float64)
