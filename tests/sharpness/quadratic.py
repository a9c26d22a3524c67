"""Models whose loss is known in closed form, for checking measures against exact values."""

from __future__ import annotations

import torch
from torch import nn


class Quadratic(nn.Module):
    """A 'model' whose mean loss is 1/2 (w - w*)^T H (w - w*), whatever the inputs.

    ``forward`` returns the loss value once per example, so ``mean_loss`` below turns it
    into the batch mean that every loss in landscape returns.
    """

    def __init__(self, hessian: torch.Tensor, start: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("hessian", hessian)
        self.register_buffer("minimum", torch.zeros(hessian.shape[0], dtype=hessian.dtype))
        init = torch.zeros_like(self.minimum) if start is None else start.clone()
        self.w = nn.Parameter(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.w - self.minimum
        return (0.5 * d @ self.hessian @ d).expand(x.shape[0], 1)


def mean_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs.mean()


def spd_matrix(eigenvalues: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """H = Q diag(eigenvalues) Q^T with a random orthogonal Q (float64); returns (H, Q)."""
    generator = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    h = q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
    return 0.5 * (h + h.T), q


def dummy_data(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(n, 1, dtype=torch.float64), torch.zeros(n, dtype=torch.int64)
