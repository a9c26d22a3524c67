"""The vector-space seam of the Krylov engines: flat vectors as before, sharded probes that do
not depend on the sharding, the memory-bounded SLQ basis, and certificates of inexact products."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.curvature.lanczos import lanczos_eigs, lanczos_tridiagonal
from landscape.curvature.trace import _rademacher
from landscape.curvature.vectors import CHUNK, FlatSpace, ParameterSpace, Slice
from tests.curvature.matrix_operator import MatrixOperator

SIZES = {"embedding.weight": 2 * CHUNK + 7, "head.bias": 5, "head.weight": 33}


def test_flat_space_draws_the_probes_of_one_seeded_generator():
    stream = FlatSpace(50).stream(7)
    generator = torch.Generator().manual_seed(7)
    assert torch.equal(stream.gaussian(), torch.randn(50, generator=generator, dtype=torch.float64))
    assert torch.equal(stream.rademacher(), _rademacher(50, generator, torch.device("cpu")))


def shards(world: int) -> list[ParameterSpace]:
    """Each rank's slices: rows split as torch.chunk does, uneven, some ranks holding none."""
    spaces = []
    for rank in range(world):
        slices = []
        for name, numel in SIZES.items():
            per_rank = -(-numel // world)
            start = min(rank * per_rank, numel)
            slices.append(Slice(name, numel, start, max(min(per_rank, numel - start), 0)))
        spaces.append(ParameterSpace(slices))
    return spaces


@pytest.mark.parametrize("draw", ["gaussian", "rademacher"])
@pytest.mark.parametrize("world", [2, 3])
def test_parameter_probes_do_not_depend_on_the_sharding(draw, world):
    whole = ParameterSpace.whole(list(SIZES), list(SIZES.values())).stream(3)
    streams = [space.stream(3) for space in shards(world)]
    for _ in range(2):  # the second draw differs from the first and still matches
        expected = getattr(whole, draw)()
        pieces = [getattr(s, draw)() for s in streams]
        per_rank = [space.split(p) for space, p in zip(shards(world), pieces)]
        joined = torch.cat([torch.cat([r[i] for r in per_rank]) for i in range(len(SIZES))])
        assert torch.equal(joined, expected)


def test_parameter_space_orthonormalises_columns_like_qr():
    space = ParameterSpace.whole(["w"], [40])
    columns = torch.randn(40, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Q = space.orthonormal_columns(columns)
    torch.testing.assert_close(Q.T @ Q, torch.eye(5, dtype=torch.float64), atol=1e-12, rtol=0)
    reference = torch.linalg.qr(columns)[0]
    torch.testing.assert_close((Q.T @ reference).abs(), torch.eye(5, dtype=torch.float64))


def symmetric(n: int = 60, seed: int = 0) -> torch.Tensor:
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a + a.T


def test_bounded_slq_basis_keeps_the_first_steps_and_the_low_moments():
    op = MatrixOperator(symmetric())
    start = torch.randn(60, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    full = lanczos_tridiagonal(op, start, 30)
    same = lanczos_tridiagonal(op, start, 30, max_basis=30)
    np.testing.assert_allclose(same[0], full[0], rtol=1e-12, atol=1e-12)
    bounded = lanczos_tridiagonal(op, start, 30, max_basis=3)
    np.testing.assert_allclose(bounded[0][:4], full[0][:4], rtol=1e-10)
    np.testing.assert_allclose(bounded[1][:4], full[1][:4], rtol=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        lanczos_tridiagonal(op, start, 30, max_basis=1)


class InexactOperator(MatrixOperator):
    """Products of ``H + eta u u^T`` reported as products of ``H`` known to within ``eta``."""

    def __init__(self, matrix: torch.Tensor, eta: float) -> None:
        vectors = torch.linalg.eigh(matrix.double()).eigenvectors
        top = vectors[:, -1]
        super().__init__(matrix.double() + eta * torch.outer(top, top))
        self.product_error = eta


def test_lanczos_bounds_are_never_tighter_than_inexact_products_allow():
    matrix = symmetric()
    exact = float(torch.linalg.eigvalsh(matrix)[-1])
    eta = 1e-4  # the products overstate the top eigenvalue by exactly eta
    result = lanczos_eigs(InexactOperator(matrix, eta), 1, tol=1e-10, eigenvectors=False)
    error = abs(result.eigenvalues[0] - exact)
    assert error == pytest.approx(eta, rel=1e-3)
    assert result.error_bounds[0] >= error
    assert result.residuals[0] >= eta
