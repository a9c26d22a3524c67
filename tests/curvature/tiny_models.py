"""Tiny float64 models with exact Hessians from ``torch.func.hessian``: the references
every curvature test compares against."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian

from landscape.curvature.hvp import evaluation_context
from tests.curvature.matrix_operator import MatrixOperator


class ResidualBlock(nn.Module):
    def __init__(self, width: int = 5) -> None:
        super().__init__()
        self.inp = nn.Linear(4, width)
        self.inner = nn.Linear(width, width)
        self.out = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(x))
        return self.out(h + torch.tanh(self.inner(h)))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def cnn_bn() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 3),
    )
    # Non-trivial running statistics, as a trained model would have.
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
        bn.running_var.copy_(torch.tensor([0.5, 1.5, 2.0]))
        bn.weight.copy_(torch.tensor([1.2, 0.8, 1.0]))
        bn.bias.copy_(torch.tensor([0.1, 0.0, -0.1]))
    return model


def residual() -> nn.Module:
    return ResidualBlock()


MODELS = {"mlp": mlp, "cnn-bn": cnn_bn, "residual": residual}
INPUT_SHAPES = {"mlp": (4,), "cnn-bn": (1, 5, 5), "residual": (4,)}


def problem(name: str, samples: int = 30, seed: int = 0, dtype=torch.float64):
    """``(model, inputs, targets)`` for one of :data:`MODELS`, deterministic in ``seed``."""
    torch.manual_seed(seed)
    model = MODELS[name]().to(dtype).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(samples, *INPUT_SHAPES[name], generator=generator, dtype=dtype)
    y = torch.randint(0, 3, (samples,), generator=generator)
    return model, x, y


def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets)


def exact_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bn_mode: str = "eval"):
    """The dense Hessian of the mean loss over ``x`` (one batch) w.r.t. all parameters."""
    named = [(n, p) for n, p in model.named_parameters()]
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        parts = [t.view(s) for t, s in zip(torch.split(theta, sizes), shapes)]
        return loss_fn(functional_call(model, dict(zip(names, parts)), (x,)), y)

    with evaluation_context(model, bn_mode):
        if bn_mode == "eval":
            return hessian(loss_of)(flat).detach()
        # torch.func's vmap rule for batch-statistics BatchNorm disagrees with finite
        # differences (torch 2.14); the row-by-row autograd Hessian agrees with them.
        return torch.autograd.functional.hessian(loss_of, flat).detach()


@functools.cache
def _reference_hessian(name: str, samples: int, seed: int, bn_mode: str) -> torch.Tensor:
    return exact_hessian(*problem(name, samples, seed), bn_mode=bn_mode)


def reference(name: str, samples: int = 30, seed: int = 0, bn_mode: str = "eval"):
    """A fresh ``(model, inputs, targets)`` and its exact Hessian (computed once per session)."""
    model, x, y = problem(name, samples, seed)
    return model, x, y, _reference_hessian(name, samples, seed, bn_mode).clone()


def clustered_operator(dim: int = 400, seed: int = 0) -> tuple[MatrixOperator, np.ndarray]:
    """A random rotation of a spectrum with a few outliers over a dense bulk."""
    generator = torch.Generator().manual_seed(seed)
    spectrum = torch.cat(
        [
            torch.tensor([10.0, 9.5, 9.0, 7.0, 6.9]),
            torch.rand(dim - 5, generator=generator, dtype=torch.float64) * 2 - 0.5,
        ]
    ).double()
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return MatrixOperator(Q @ torch.diag(spectrum) @ Q.T), np.sort(spectrum.numpy())[::-1]
