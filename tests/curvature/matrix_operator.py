"""A dense symmetric matrix behind the operators' ``dim`` / ``matvec`` interface: the trace and
eigenvalue algorithms checked on analytic spectra."""

from __future__ import annotations

import torch


class MatrixOperator:
    """A dense symmetric matrix behind the same ``dim`` / ``matvec`` interface (small problems,
    tests, and checking the algorithms on analytic spectra)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("expected a square matrix")
        self.matrix = matrix.to(torch.float64)
        self.dim = matrix.shape[0]
        self.device = matrix.device
        self.hvp_count = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.hvp_count += 1
        return (self.matrix @ v.to(self.matrix)).to(v.dtype)
