"""Trace estimators: unbiased, stopped at the requested standard error, intervals that cover."""

import time

import pytest
import torch

from landscape.curvature import (
    HessianOperator,
    hutchinson_trace,
    hutchpp_trace,
    krylov_hutchpp_trace,
)
from tests.curvature.matrix_operator import MatrixOperator
from tests.curvature.tiny_models import clustered_operator, loss_fn, reference


def _outlier_operator(dim: int = 300, seed: int = 0) -> MatrixOperator:
    """Like a network Hessian: a few large eigenvalues over a small, mostly positive bulk."""
    generator = torch.Generator().manual_seed(seed)
    bulk = torch.rand(dim - 8, generator=generator, dtype=torch.float64) * 0.2 - 0.02
    spectrum = torch.cat([torch.linspace(20.0, 5.0, 8, dtype=torch.float64), bulk])
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return MatrixOperator(Q @ torch.diag(spectrum) @ Q.T)


ESTIMATORS = {
    "krylov-hutch++": lambda op, seed: krylov_hutchpp_trace(op, rel_stderr=0.02, seed=seed),
    "hutch++": lambda op, seed: hutchpp_trace(op, rel_stderr=0.02, sketch_rank=10, seed=seed),
    "hutchinson": lambda op, seed: hutchinson_trace(op, rel_stderr=0.02, seed=seed),
}


@pytest.mark.parametrize("method", list(ESTIMATORS))
def test_the_95_percent_interval_covers_the_exact_trace_about_95_percent_of_the_time(method):
    model, x, y, H = reference("residual")
    H = H + 0.05 * torch.eye(H.shape[0], dtype=H.dtype)  # a trace far enough from zero for 2%
    op = MatrixOperator(H)
    exact = torch.trace(H).item()
    seeds = range(200)
    covered = sum(
        lo <= exact <= hi
        for lo, hi in (ESTIMATORS[method](op, seed).interval(1.96) for seed in seeds)
    )
    assert 0.88 <= covered / len(seeds) <= 0.995


@pytest.mark.parametrize("method", list(ESTIMATORS))
def test_sampling_stops_once_the_requested_relative_stderr_is_reached(method):
    result = ESTIMATORS[method](_outlier_operator(), 0)
    assert result.converged
    assert result.relative_stderr <= 0.02
    assert result.method == method


@pytest.mark.parametrize("estimator", [krylov_hutchpp_trace, hutchpp_trace])
def test_deflation_needs_far_fewer_products_when_outliers_dominate(estimator):
    op = _outlier_operator()
    plus = estimator(op, rel_stderr=0.01, seed=1)
    plain = hutchinson_trace(op, rel_stderr=0.01, seed=1, max_hvps=20000)
    assert plus.converged and plain.converged
    assert plus.hvp_count * 5 < plain.hvp_count
    exact = torch.trace(op.matrix).item()
    assert abs(plus.trace - exact) <= 4 * plus.stderr


def test_krylov_deflation_stops_growing_when_a_step_saves_less_than_a_sample():
    op = _outlier_operator()
    result = krylov_hutchpp_trace(op, rel_stderr=0.01, seed=2)
    assert 8 <= result.sketch_rank < 100  # the outliers are deflated, the flat bulk is sampled
    assert result.samples >= 10


def test_a_sketch_covering_the_whole_space_gives_the_exact_trace():
    model, x, y, H = reference("mlp")
    op = HessianOperator(model, loss_fn, x, y)
    result = hutchpp_trace(op, sketch_rank=op.dim)
    assert result.trace == pytest.approx(torch.trace(H).item(), rel=1e-12)
    assert result.stderr == 0.0 and result.hvp_count == op.dim


def test_a_krylov_basis_spanning_the_whole_space_gives_the_exact_trace():
    op, _ = clustered_operator(dim=40)
    result = krylov_hutchpp_trace(op, rel_stderr=1e-9, max_rank=40, max_hvps=1000)
    assert result.trace == pytest.approx(torch.trace(op.matrix).item(), rel=1e-10)
    assert result.stderr == 0.0 and result.sketch_rank == 40


def test_an_invariant_krylov_subspace_leaves_repeated_eigenvalues_to_the_samples():
    # One Krylov vector per distinct eigenvalue: the basis stops at 2 of 30 dimensions.
    spectrum = torch.tensor([3.0] * 10 + [1.0] * 20, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(30, 30, generator=generator, dtype=torch.float64))
    op = MatrixOperator(Q @ torch.diag(spectrum) @ Q.T)
    result = krylov_hutchpp_trace(op, rel_stderr=0.01, max_rank=30)
    assert result.sketch_rank == 2
    assert abs(result.trace - 50.0) <= 4 * result.stderr + 1e-9


def test_hutch_plus_plus_on_a_model_hessian_is_unbiased():
    model, x, y, H = reference("cnn-bn")
    op = HessianOperator(model, loss_fn, x, y)
    result = hutchpp_trace(op, rel_stderr=0.01, sketch_rank=12, max_hvps=3000, seed=5)
    assert result.hvp_count == op.hvp_count
    assert abs(result.trace - torch.trace(H).item()) <= 4 * result.stderr


def test_an_unreachable_target_is_reported_as_not_converged():
    generator = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(40, 40, generator=generator, dtype=torch.float64))
    spectrum = torch.tensor([1.0, -1.0] * 20, dtype=torch.float64)
    zero_trace = MatrixOperator(Q @ torch.diag(spectrum) @ Q.T)
    result = hutchinson_trace(zero_trace, rel_stderr=1e-3, max_hvps=50)
    assert not result.converged and result.hvp_count == 50


@pytest.mark.parametrize("kwargs", [{"rel_stderr": 0.0}, {"min_samples": 1}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        hutchpp_trace(MatrixOperator(torch.eye(4, dtype=torch.float64)), **kwargs)


class _TimedBlocks(MatrixOperator):
    """A matrix whose single products or blocks of products are slowed down, and which records
    the size of each pass."""

    def __init__(self, matrix: torch.Tensor, slow: str) -> None:
        super().__init__(matrix)
        self.slow, self.passes = slow, []

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.passes.append(1)
        time.sleep(0.02 if self.slow == "single" else 0.0)
        return super().matvec(v)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.passes.append(V.shape[0])
        time.sleep(0.2 if self.slow == "block" else 0.0)
        return torch.stack([super(_TimedBlocks, self).matvec(v) for v in V])


@pytest.mark.parametrize(("slow", "kept"), [("block", 1), ("single", 4)])
def test_hutchinson_keeps_single_products_or_blocks_whichever_its_trial_passes_timed_cheaper(
    slow, kept
):
    matrix = _outlier_operator(dim=40).matrix
    op = _TimedBlocks(matrix, slow)
    result = hutchinson_trace(op, rel_stderr=1e-9, max_hvps=17, seed=3)
    assert op.passes[:2] == [1, 4]  # the trials
    assert set(op.passes[2:-1]) == {kept}  # the last pass may be cut short by the budget
    plain = hutchinson_trace(MatrixOperator(matrix), rel_stderr=1e-9, max_hvps=17, seed=3)
    assert result.trace == pytest.approx(plain.trace, rel=1e-12)
