"""Lanczos: extreme eigenpairs to the requested relative residual, honestly reported."""

import numpy as np
import pytest
import torch

from landscape.curvature import HessianOperator, lanczos_eigs
from landscape.curvature.lanczos import error_bounds as lanczos_error_bounds
from tests.curvature.matrix_operator import MatrixOperator
from tests.curvature.tiny_models import MODELS, clustered_operator, loss_fn, reference


def _exact_extremes(H: torch.Tensor, k: int, which: str) -> np.ndarray:
    eigenvalues = torch.linalg.eigvalsh(H).numpy()
    return eigenvalues[::-1][:k] if which == "top" else eigenvalues[:k]


@pytest.mark.parametrize("which", ["top", "bottom"])
@pytest.mark.parametrize("name", list(MODELS))
def test_extreme_eigenvalues_match_the_exact_hessian_to_1e_6(name, which):
    model, x, y, H = reference(name)
    op = HessianOperator(model, loss_fn, x, y, batch_size=16)
    result = lanczos_eigs(op, 4, which=which, tol=1e-8, seed=1)
    exact = _exact_extremes(H, 4, which)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, exact, rtol=1e-6)
    assert result.hvp_count == op.hvp_count


def test_reported_residuals_are_the_true_residuals_and_meet_the_tolerance():
    model, x, y, H = reference("residual")
    op = HessianOperator(model, loss_fn, x, y)
    result = lanczos_eigs(op, 3, tol=1e-5, eigenvectors=True, seed=2)
    assert result.eigenvectors.shape == (3, op.dim)
    for value, residual, vector in zip(result.eigenvalues, result.residuals, result.eigenvectors):
        true_residual = torch.linalg.norm(H @ vector - value * vector).item()
        assert residual == pytest.approx(true_residual, rel=1e-3, abs=1e-13)
        assert residual <= 1e-5 * abs(value)
        assert torch.linalg.norm(vector).item() == pytest.approx(1.0, abs=1e-12)


def test_eigenvalues_come_most_extreme_first():
    spectrum = torch.tensor([5.0, 4.0, 3.0, -1.0, -2.0, 0.5, 0.1, 0.2])
    op = MatrixOperator(torch.diag(spectrum.double()))
    top = lanczos_eigs(op, 3, which="top", tol=1e-10)
    bottom = lanczos_eigs(op, 2, which="bottom", tol=1e-10)
    np.testing.assert_allclose(top.eigenvalues, [5.0, 4.0, 3.0], rtol=1e-10)
    np.testing.assert_allclose(bottom.eigenvalues, [-2.0, -1.0], rtol=1e-10)


def test_thick_restarts_keep_memory_bounded_and_still_converge():
    op, spectrum = clustered_operator()
    result = lanczos_eigs(op, 5, tol=1e-9, basis_size=12, seed=3)
    assert result.restarts > 0 and result.converged
    np.testing.assert_allclose(result.eigenvalues, spectrum[:5], rtol=1e-8)


def test_a_spent_budget_is_reported_as_not_converged():
    op, _ = clustered_operator()
    result = lanczos_eigs(op, 5, tol=1e-12, max_hvps=8)
    assert not result.converged
    assert result.hvp_count == 8 == op.hvp_count
    assert np.all(result.relative_residuals > 0)


def test_the_same_seed_gives_the_same_result():
    op, _ = clustered_operator()
    a = lanczos_eigs(op, 2, tol=1e-6, seed=7)
    b = lanczos_eigs(op, 2, tol=1e-6, seed=7)
    assert np.array_equal(a.eigenvalues, b.eigenvalues) and a.hvp_count == b.hvp_count


def test_the_whole_spectrum_of_a_tiny_operator_is_exact():
    matrix = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    result = lanczos_eigs(MatrixOperator(matrix), 3, tol=1e-12)
    np.testing.assert_allclose(
        result.eigenvalues, torch.linalg.eigvalsh(matrix).flip(0).numpy(), rtol=1e-12
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k must be"),
        ({"k": 9}, "k must be"),
        ({"which": "largest"}, "which"),
        ({"tol": 0.0}, "tol"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    op = MatrixOperator(torch.eye(8, dtype=torch.float64))
    with pytest.raises(ValueError, match=message):
        lanczos_eigs(op, **kwargs)


@pytest.mark.parametrize("k, which", [(1, "top"), (5, "top"), (3, "bottom")])
def test_the_gap_rule_reaches_the_requested_eigenvalue_error_with_fewer_products(k, which):
    op, spectrum = clustered_operator()
    exact = spectrum[:k] if which == "top" else np.sort(spectrum)[:k]
    by_gap = lanczos_eigs(op, k, which=which, tol=1e-8, stop="gap", seed=4)
    by_residual = lanczos_eigs(op, k, which=which, tol=1e-8, seed=4)
    assert by_gap.converged and by_gap.stop == "gap"
    errors = np.abs(by_gap.eigenvalues - exact)
    assert np.all(errors <= by_gap.error_bounds * (1 + 1e-6) + 1e-12)
    assert np.all(errors <= 1e-8 * np.abs(exact))
    assert by_gap.hvp_count < by_residual.hvp_count


def test_error_bounds_are_quadratic_in_the_residual_when_the_gap_is_known():
    theta = np.array([10.0, 9.0, 1.0])
    residuals = np.array([1e-3, 1e-2, 1e-1])
    bounds = lanczos_error_bounds(theta, residuals, np.array([0]))
    assert bounds[0] == pytest.approx(1e-6 / (1.0 - 1e-2))


def test_an_unknown_stop_rule_is_refused():
    with pytest.raises(ValueError, match="stop"):
        lanczos_eigs(MatrixOperator(torch.eye(8, dtype=torch.float64)), 1, stop="oracle")


@pytest.mark.parametrize("eigenvectors, rule", [(False, "gap"), (True, "residual")])
def test_the_default_rule_is_the_error_bound_unless_eigenvectors_are_asked_for(eigenvectors, rule):
    op, _ = clustered_operator()
    default = lanczos_eigs(op, 3, tol=1e-8, seed=4, eigenvectors=eigenvectors)
    explicit = lanczos_eigs(op, 3, tol=1e-8, seed=4, eigenvectors=eigenvectors, stop=rule)
    assert default.stop == rule and default.hvp_count == explicit.hvp_count


def _perturbed(op: MatrixOperator, scale: float, seed: int = 9) -> MatrixOperator:
    generator = torch.Generator().manual_seed(seed)
    E = torch.randn(op.dim, op.dim, generator=generator, dtype=torch.float64)
    return MatrixOperator(op.matrix + scale * (E + E.T) / (2 * op.dim**0.5))


def test_a_warm_start_from_a_nearby_operator_s_ritz_vectors_saves_products():
    from landscape.curvature.lanczos import warm_start

    before, _ = clustered_operator()
    after = _perturbed(before, 0.05)
    old = lanczos_eigs(before, 3, tol=1e-10, eigenvectors=True).eigenvectors
    cold = lanczos_eigs(after, 3, tol=1e-6, eigenvectors=False, seed=1)
    warm = lanczos_eigs(after, 3, tol=1e-6, eigenvectors=False, start=warm_start(old))
    exact = torch.linalg.eigvalsh(after.matrix).flip(0)[:3].numpy()
    assert warm.converged and np.allclose(warm.eigenvalues, exact, rtol=1e-6)
    assert warm.hvp_count < cold.hvp_count


def test_a_warm_start_still_finds_an_outlier_the_old_vectors_miss():
    from landscape.curvature.lanczos import warm_start

    before, _ = clustered_operator()
    old = lanczos_eigs(before, 1, tol=1e-10, eigenvectors=True).eigenvectors
    # a new largest eigenvalue, along a direction orthogonal to the old top vector
    new = torch.randn(before.dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    new -= (new @ old[0]) * old[0]
    new /= new.norm()
    after = MatrixOperator(before.matrix + 20.0 * torch.outer(new, new))
    warm = lanczos_eigs(after, 1, tol=1e-8, start=warm_start(old))
    assert warm.eigenvalues[0] == pytest.approx(float(torch.linalg.eigvalsh(after.matrix)[-1]))
