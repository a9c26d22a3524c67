"""The curvature measures (top-eigenvalue, trace) of another matrix than the Hessian: the GGN
and the Fishers, exact against dense float64 matrices of a tiny model."""

import pytest
import torch

from landscape.sharpness import compute_measure
from tests.curvature.test_gauss_newton import dense_fisher, dense_ggn
from tests.curvature.tiny_models import exact_hessian, loss_fn, problem

DENSE = {
    "hessian": exact_hessian,
    "ggn": dense_ggn,
    "fisher": dense_fisher,
}


@pytest.fixture(autouse=True)
def _tiny_models_use_one_thread(one_thread):
    yield


@pytest.mark.parametrize("curvature", list(DENSE))
def test_top_eigenvalue_of_a_curvature_is_its_dense_largest_eigenvalue(curvature):
    model, x, y = problem("mlp")
    result = compute_measure(
        "top-eigenvalue", model, loss_fn, x, y, tol=1e-9, batch_size=7, curvature=curvature
    )
    exact = float(torch.linalg.eigvalsh(DENSE[curvature](model, x, y))[-1])
    assert result.value == pytest.approx(exact, rel=1e-6)
    assert result.params["curvature"] == curvature


@pytest.mark.parametrize("curvature", ["ggn", "fisher"])
def test_trace_of_a_curvature_is_its_dense_trace(curvature):
    model, x, y = problem("mlp")
    result = compute_measure(
        "trace", model, loss_fn, x, y, rel_stderr=1e-9, batch_size=7, curvature=curvature
    )
    exact = float(torch.trace(DENSE[curvature](model, x, y)))
    assert result.value == pytest.approx(exact, rel=1e-6)
    assert result.params["curvature"] == curvature


def test_monte_carlo_fisher_measures_record_their_samples_and_follow_the_seed():
    model, x, y = problem("mlp")

    def top(seed):
        return compute_measure(
            "top-eigenvalue", model, loss_fn, x, y, tol=1e-9, seed=seed,
            curvature="fisher-mc", fisher_samples=3, loss_name="cross-entropy",
        )  # fmt: skip

    first = top(0)
    assert first.params["curvature"] == "fisher-mc" and first.params["fisher_samples"] == 3
    assert top(0).value == first.value != top(1).value
