"""Stochastic Lanczos quadrature: a normalised density whose moments are the spectrum's."""

import numpy as np
import pytest
import torch

from landscape.curvature import HessianOperator, slq_density
from landscape.curvature.lanczos import lanczos_tridiagonal, lanczos_tridiagonal_lockstep
from landscape.curvature.trace import _rademacher
from tests.curvature.matrix_operator import MatrixOperator
from tests.curvature.tiny_models import MODELS, loss_fn, reference


@pytest.mark.parametrize("name", list(MODELS))
def test_the_smoothed_density_integrates_to_one(name):
    model, x, y, _ = reference(name)
    density = slq_density(HessianOperator(model, loss_fn, x, y), runs=2, steps=20)
    assert np.trapezoid(density.values, density.grid) == pytest.approx(1.0, abs=1e-6)
    assert np.all(density.values >= 0)
    assert density.nodes.shape == density.weights.shape == (2, 20)
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, rtol=1e-12)


def test_quadrature_moments_match_the_trace_of_h_and_h_squared_over_n():
    model, x, y, H = reference("cnn-bn")
    op = MatrixOperator(H)
    density = slq_density(op, runs=400, steps=6, seed=2)
    n = H.shape[0]
    for power, exact in ((1, torch.trace(H).item() / n), (2, torch.trace(H @ H).item() / n)):
        per_run = np.nansum(density.weights * density.nodes**power, axis=1)
        stderr = per_run.std(ddof=1) / np.sqrt(len(per_run))
        assert density.moment(power) == pytest.approx(per_run.mean(), rel=1e-12)
        assert abs(per_run.mean() - exact) <= 4 * stderr


def test_the_smoothed_moments_are_the_quadrature_moments_plus_the_smoothing():
    model, x, y, H = reference("mlp")
    density = slq_density(MatrixOperator(H), runs=3, steps=15, grid_points=4001)
    first = np.trapezoid(density.grid * density.values, density.grid)
    second = np.trapezoid(density.grid**2 * density.values, density.grid)
    assert first == pytest.approx(density.moment(1), abs=1e-6)
    assert second == pytest.approx(density.moment(2) + density.sigma**2, rel=1e-5)


def test_a_full_krylov_space_puts_the_nodes_on_the_exact_eigenvalues():
    spectrum = np.array([-1.0, 0.5, 2.0, 3.0, 7.0])
    density = slq_density(MatrixOperator(torch.diag(torch.tensor(spectrum))), runs=1, steps=5)
    np.testing.assert_allclose(np.sort(density.nodes[0]), spectrum, atol=1e-10)
    # Rademacher start vector: every eigenvector of a diagonal matrix gets weight 1/n.
    np.testing.assert_allclose(density.weights[0], 0.2, atol=1e-10)


def test_runs_that_exhaust_the_krylov_space_are_padded_with_nan_nodes_and_zero_weights():
    density = slq_density(MatrixOperator(torch.eye(6, dtype=torch.float64)), runs=2, steps=6)
    assert np.isnan(density.nodes[:, 1:]).all() and (density.weights[:, 1:] == 0).all()
    assert density.moment(1) == pytest.approx(1.0)
    assert np.trapezoid(density.values, density.grid) == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------ runs in lockstep
@pytest.mark.parametrize("name", list(MODELS))
def test_runs_in_lockstep_give_the_density_of_runs_one_after_another(name):
    model, x, y, _ = reference(name)
    densities = [
        slq_density(
            HessianOperator(model, loss_fn, x, y, batch_size=16),
            runs=3,
            steps=12,
            lockstep=lockstep,
        )
        for lockstep in (True, False)
    ]
    together, alone = densities
    assert together.hvp_count == alone.hvp_count == 36
    scale = np.nanmax(np.abs(alone.nodes))
    np.testing.assert_allclose(together.nodes, alone.nodes, atol=1e-9 * scale)
    np.testing.assert_allclose(together.weights, alone.weights, atol=1e-9)
    np.testing.assert_allclose(together.values, alone.values, rtol=1e-6, atol=1e-9)


class _CountingOperator(HessianOperator):
    """Records the number of vectors of every call, batched or single."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def matmat(self, vectors):
        self.calls.append(vectors.shape[0])
        return super().matmat(vectors)

    def matvec(self, v):
        self.calls.append(1)
        return super().matvec(v)


@pytest.mark.parametrize("lockstep, calls", [(True, [4] * 5), (False, [1] * 20)])
def test_each_lockstep_step_is_one_batched_product_of_all_runs(lockstep, calls):
    model, x, y, _ = reference("cnn-bn")
    op = _CountingOperator(model, loss_fn, x, y)
    slq_density(op, runs=4, steps=5, lockstep=lockstep)
    assert op.calls == calls and op.hvp_count == 20


@pytest.mark.parametrize("name", list(MODELS))
def test_lockstep_runs_reproduce_the_exact_moments_of_their_start_vectors(name):
    # With a full Krylov space, run r's Gauss rule is exact for every polynomial:
    # sum_i tau_i theta_i^p = v_r^T H^p v_r / n for its Rademacher start v_r (float64 H).
    model, x, y, H = reference(name)
    n = H.shape[0]
    density = slq_density(
        HessianOperator(model, loss_fn, x, y), runs=2, steps=n, seed=3, lockstep=True
    )
    generator = torch.Generator().manual_seed(3)
    for run in range(2):
        v = _rademacher(n, generator, torch.device("cpu"))
        mask = ~np.isnan(density.nodes[run])
        theta, tau = density.nodes[run, mask], density.weights[run, mask]
        for power in (1, 2, 3):
            exact = float(v @ torch.linalg.matrix_power(H, power) @ v) / n
            scale = float(torch.linalg.matrix_norm(H, 2)) ** power
            assert float(np.sum(tau * theta**power)) == pytest.approx(exact, abs=1e-8 * scale)


def test_lockstep_runs_that_end_at_different_steps_match_each_run_alone():
    spectrum = torch.tensor([-1.0, 0.5, 2.0, 3.0, 7.0, 7.0], dtype=torch.float64)
    op = MatrixOperator(torch.diag(spectrum))
    starts = torch.stack(
        [
            torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),  # an eigenvector: ends after 1 step
            torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),  # four distinct eigenvalues seen
            torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0]),  # five
        ]
    ).double()
    together = lanczos_tridiagonal_lockstep(op, starts, steps=6)
    assert [len(alphas) for alphas, _ in together] == [1, 4, 5]
    assert op.hvp_count == 10
    for (alphas, betas), start in zip(together, starts):
        alone_alphas, alone_betas = lanczos_tridiagonal(op, start, steps=6)
        np.testing.assert_allclose(alphas, alone_alphas, atol=1e-12)
        np.testing.assert_allclose(betas, alone_betas, atol=1e-12)
