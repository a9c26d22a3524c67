"""Tiny models with known answers for the surface tests."""

from __future__ import annotations

import torch
from torch import nn


class QuadraticModel(nn.Module):
    """Per-example output ``0.5 (v - x_i)^T H (v - x_i)`` with ``v = w.flatten()``.

    With ``mean_output`` as the loss, the loss is the average of these over the examples, a
    quadratic in ``w`` with Hessian ``H``: the surface along any plane is known in closed form.
    """

    def __init__(self, hessian: torch.Tensor, w0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("hessian", hessian.clone())
        self.w = nn.Parameter(w0.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = self.w.reshape(1, -1) - x
        value = 0.5 * ((diff @ self.hessian) * diff).sum(dim=1, keepdim=True)
        return torch.cat([value, torch.zeros_like(value)], dim=1)


def mean_output(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs[:, 0].mean()


def quadratic_loss(model: QuadraticModel, w: torch.Tensor, x: torch.Tensor) -> float:
    """Closed form: mean_i 0.5 (w - x_i)^T H (w - x_i), in float64."""
    h = model.hessian.double()
    diff = w.detach().double().reshape(1, -1) - x.double()
    return float((0.5 * ((diff @ h) * diff).sum(dim=1)).mean())


def make_quadratic(seed: int = 0, shape=(2, 3), n: int = 7, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    p = shape[0] * shape[1]
    a = torch.randn(p, p, generator=gen, dtype=torch.float64)
    hessian = (a @ a.T + torch.eye(p, dtype=torch.float64)).to(dtype)
    w0 = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    x = torch.randn(n, p, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.zeros(n, dtype=torch.int64)
    return QuadraticModel(hessian, w0), x, y


class TinyBNNet(nn.Module):
    """conv -> BatchNorm -> ReLU -> pool -> linear, small enough for exact checks."""

    def __init__(self, channels: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


def tiny_bn_net(seed: int, dtype=torch.float32) -> TinyBNNet:
    torch.manual_seed(seed)
    model = TinyBNNet().to(dtype)
    with torch.no_grad():  # non-trivial running statistics, as after training
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


def tiny_data(n: int = 24, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 5, 5, generator=gen).to(dtype)
    y = torch.randint(0, 3, (n,), generator=gen)
    return x, y
