"""Lanczos: extreme eigenpairs to the requested relative residual, honestly reported."""

import logging

import numpy as np
import pytest
import torch

from landscape.curvature import HessianOperator, lanczos_eigs
from landscape.curvature.lanczos import error_bounds as lanczos_error_bounds
from landscape.curvature.lanczos import reset_precision_warning
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


def _spectrum_operator(seed: int = 3, dim: int = 60) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    values = torch.cat([torch.tensor([9.0, 7.0, 5.0]), torch.linspace(-1, 1, dim - 3)])
    return (q * values.to(torch.float64)) @ q.T


@pytest.fixture
def precision_log(caplog):
    reset_precision_warning()
    with caplog.at_level(logging.WARNING, logger="landscape.curvature"):
        yield caplog
    reset_precision_warning()


def _precision_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not symmetric" in r.getMessage()]


def test_products_below_their_precision_widen_the_bound_past_the_true_error_and_warn_once(
    precision_log,
):
    exact = _spectrum_operator()
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(exact.shape, generator=g, dtype=torch.float64)
    # What float32 rounding inside a float64 model does: a product error of ~1e-8, not symmetric.
    rounded = MatrixOperator(exact + 1e-8 * 9.0 * noise / torch.linalg.matrix_norm(noise, 2))
    results = [lanczos_eigs(rounded, 2, tol=1e-13, eigenvectors=False) for _ in range(2)]
    true_error = np.abs(results[0].eigenvalues - np.array([9.0, 7.0]))
    assert results[0].product_error > 1e-9
    assert np.all(true_error <= results[0].error_bounds)
    assert np.all(results[0].error_bounds >= 1e-9 * 9.0)
    assert len(_precision_warnings(precision_log)) == 1


def test_exact_symmetric_products_keep_their_bound_and_give_no_warning(precision_log):
    result = lanczos_eigs(MatrixOperator(_spectrum_operator()), 2, tol=1e-13, eigenvectors=False)
    assert result.product_error == 0.0
    assert np.all(result.error_bounds <= 1e-10 * 9.0)  # the float64 floor, not widened
    assert not _precision_warnings(precision_log)


@pytest.mark.slow
def test_llama_float64_with_its_float32_rmsnorm_has_a_bound_covering_the_true_float64_value(
    precision_log, tmp_path
):
    transformers = pytest.importorskip("transformers")
    from landscape.loading.external import with_logits
    from landscape.losses import make_loss
    from tests import external_models as em

    def llama():
        model = transformers.LlamaForCausalLM.from_pretrained(
            em.save_hf("llama", tmp_path / "llama"), dtype=torch.float64
        )
        model.model.embed_tokens.requires_grad_(False)
        model.lm_head.requires_grad_(False)
        return with_logits(model.eval(), "causal-lm")

    def rms_norm_in_float64(self, hidden: torch.Tensor) -> torch.Tensor:
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return self.weight * hidden * torch.rsqrt(variance + self.variance_epsilon)

    x, y = em.token_blocks(count=3, block=8)
    with HessianOperator(llama(), make_loss(), x, y) as op:
        got = lanczos_eigs(op, 1, tol=1e-12, eigenvectors=False)
    reference = llama()
    for module in reference.modules():
        if type(module).__name__ == "LlamaRMSNorm":
            module.forward = rms_norm_in_float64.__get__(module)
    with HessianOperator(reference, make_loss(), x, y) as op:
        exact = lanczos_eigs(op, 1, tol=1e-13, eigenvectors=False)
    assert exact.product_error == 0.0 and exact.converged
    assert abs(got.eigenvalues[0] - exact.eigenvalues[0]) <= got.error_bounds[0]
    assert got.product_error > 1e-10
    assert len(_precision_warnings(precision_log)) == 1
