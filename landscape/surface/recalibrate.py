"""BatchNorm recalibration: recompute running statistics for the weights the model has now.

Perturbed or interpolated weights no longer match the running statistics stored with a
checkpoint; evaluating with stale statistics can report a barrier that is really a
statistics mismatch (Jordan et al., "REPAIR", ICLR 2023; Frankle et al. 2020 reset them too).
Recalibration changes the running statistics (and ``num_batches_tracked``) only.
"""

from __future__ import annotations

import torch
from torch import nn

from landscape.bn import BN_TYPES


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, batch_size: int = 500) -> None:
    """Reset every BatchNorm layer's running statistics and recompute them as the plain
    average over the batches of ``inputs`` (``momentum=None``: cumulative average, so the
    result does not depend on a momentum or on how many batches came before).

    Parameters are untouched; train/eval flags and momenta are restored afterwards.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return
    flags = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in layers}
    model.eval()  # dropout and friends off; only BatchNorm collects statistics
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
            layer.train()
        for start in range(0, inputs.shape[0], batch_size):
            model(inputs[start : start + batch_size])
    finally:
        for layer, momentum in momenta.items():
            layer.momentum = momentum
        for module, flag in flags.items():
            module.train(flag)
