"""Stochastic Lanczos quadrature: a normalised density whose moments are the spectrum's."""

import numpy as np
import pytest
import torch

from landscape.curvature import HessianOperator, slq_density
from landscape.curvature.operator import MatrixOperator
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
