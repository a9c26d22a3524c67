"""BatchNorm with the statistics of the global batch, for ranks that torch's SyncBatchNorm
cannot serve (CPU tensors on Gloo).

In training mode each layer normalises with the mean and the (biased) variance over the
examples of *all* ranks, as one process would over the whole batch (Ioffe & Szegedy 2015, with
the batch spread over ranks); the running variance takes the unbiased estimate, as torch's.
Both moments are all-reduced with torch's functional (autograd-aware) all-reduce, whose backward
all-reduces the gradients, so each rank's input gradient includes what its examples did to the
other ranks' losses through the shared statistics. Two passes (the mean, then the squared
deviations from it) keep the variance free of the cancellation of E[x^2] - E[x]^2.

On CUDA, :func:`convert` is not needed: torch's ``nn.SyncBatchNorm`` has fused kernels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import _functional_collectives as collectives

from landscape.bn import BN_TYPES


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the channel dimension (dim 1) of inputs of any rank, statistics summed
    over the ranks of ``process_group`` in training mode; plain BatchNorm in evaluation."""

    def __init__(self, *args: Any, process_group: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not self.training:
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor(
            [input.numel() / input.shape[1]], dtype=input.dtype, device=input.device
        )
        total = _summed(torch.cat([input.sum(dims), count]), self._group())
        n = total[-1]
        mean = total[:-1] / n
        centred = input - mean.view(shape)
        variance = _summed(centred.square().sum(dims), self._group()) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum
                if m is None:  # a cumulative average, as torch's
                    m = 1.0 / int(self.num_batches_tracked)
                unbiased = variance * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach().to(self.running_var), alpha=m)
        out = centred * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    def _group(self) -> Any:
        return self.process_group if self.process_group is not None else dist.group.WORLD


def _summed(tensor: torch.Tensor, group: Any) -> torch.Tensor:
    """The sum over the ranks, differentiable: its backward sums the gradients over the ranks.
    (``torch.distributed.nn.functional.all_reduce`` did this; torch 2.14 deprecates it in favour
    of the functional collectives.)"""
    return collectives.wait_tensor(collectives.all_reduce(tensor, "sum", group))


def convert(module: nn.Module, process_group: Any = None) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a :class:`GlobalBatchNorm` holding the
    same parameters and buffers (the state-dict keys do not change)."""
    if isinstance(module, BN_TYPES) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            process_group=process_group,
        )
        with torch.no_grad():
            if module.affine:
                new.weight = module.weight
                new.bias = module.bias
            if module.track_running_stats:
                new.running_mean = module.running_mean
                new.running_var = module.running_var
                new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert(child, process_group))
    return module
