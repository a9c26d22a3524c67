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
    total_loss = torch.zeros((), dtype=torch.float64, device=inputs.device)
    correct = torch.zeros((), dtype=torch.float64, device=inputs.device)
    n = inputs.shape[0]
    for start in range(0, n, batch_size):
        x = inputs[start : start + batch_size]
        y = targets[start : start + batch_size]
        out = model(x)
        total_loss += loss_fn(out, y).double() * x.shape[0]
        if y.dtype in (torch.int64, torch.int32):
            hits = out.argmax(dim=-1) == y  # (batch,) or (batch, positions)
            correct += hits.double().sum() / max(1, hits[0].numel())
        else:
            correct += (out.argmax(dim=-1) == y.argmax(dim=-1)).sum()
    return (total_loss / n).item(), correct.item() / n
