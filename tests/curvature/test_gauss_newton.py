"""GGN and Fisher operators: exact against dense float64 matrices of tiny models, PSD, and the
identities that define them."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian, jacrev

from landscape.curvature import lanczos_eigs
from landscape.curvature.gauss_newton import (
    CURVATURES,
    CategoricalSampler,
    EmpiricalFisherOperator,
    GGNOperator,
    MonteCarloFisherOperator,
    categorical_sampler,
    sampled_labels,
    sampler_for_loss,
)
from landscape.curvature.hvp import evaluation_context
from landscape.curvature.operator import HessianOperator
from landscape.losses import make_loss
from landscape.parallel import SINGLE, Partition
from tests.curvature.tiny_models import MODELS, exact_hessian, loss_fn, problem


def _flat_function(model, names=None):
    named = [(n, p) for n, p in model.named_parameters() if names is None or n in names]
    keys = [n for n, _ in named]
    shapes, sizes = [p.shape for _, p in named], [p.numel() for _, p in named]
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])

    def outputs_of(theta, x):
        parts = [t.view(s) for t, s in zip(torch.split(theta, sizes), shapes)]
        return functional_call(model, dict(zip(keys, parts)), (x,), strict=False)

    return flat, outputs_of


def dense_ggn(model, x, y, loss=loss_fn):
    """``J^T (d^2 L / dz^2) J`` from the full Jacobian and the output Hessian."""
    flat, outputs_of = _flat_function(model)
    with evaluation_context(model, "eval"):
        z = outputs_of(flat, x).detach()
        J = jacrev(outputs_of)(flat, x).reshape(z.numel(), -1)
        H_out = hessian(lambda out: loss(out.view_as(z), y))(z.reshape(-1))
    return J.T @ H_out @ J


def dense_fisher(model, x, y, loss=loss_fn):
    """``(1/n) sum_i g_i g_i^T`` from the per-example gradients."""
    flat, outputs_of = _flat_function(model)

    def losses_of(theta):
        z = outputs_of(theta, x)
        return torch.stack([loss(z[i : i + 1], y[i : i + 1]) for i in range(len(x))])

    with evaluation_context(model, "eval"):
        G = jacrev(losses_of)(flat)
    return G.T @ G / len(x)


def dense_matrix(op) -> torch.Tensor:
    return torch.stack([op.matvec(e) for e in torch.eye(op.dim, dtype=torch.float64)], dim=1)


def _close(A, B, tol=1e-6):
    assert torch.allclose(A, B, rtol=0, atol=tol * B.abs().max()), float((A - B).abs().max())


@pytest.mark.parametrize("name", list(MODELS))
def test_ggn_products_equal_the_dense_gauss_newton_matrix(name):
    model, x, y = problem(name)
    op = GGNOperator(model, loss_fn, x, y, batch_size=7)  # uneven batches, exact weights
    _close(dense_matrix(op), dense_ggn(model, x, y))


@pytest.mark.parametrize("name", list(MODELS))
def test_empirical_fisher_products_equal_the_mean_of_per_example_outer_products(name):
    model, x, y = problem(name)
    op = EmpiricalFisherOperator(model, loss_fn, x, y, batch_size=7)
    _close(dense_matrix(op), dense_fisher(model, x, y))


@pytest.mark.parametrize("curvature", ["ggn", "fisher", "fisher-mc"])
@pytest.mark.parametrize("name", ["cnn-bn", pytest.param("residual", marks=pytest.mark.slow)])
def test_gauss_newton_and_fisher_are_symmetric_positive_semidefinite(name, curvature):
    model, x, y = problem(name)
    C = dense_matrix(CURVATURES[curvature](model, loss_fn, x, y, batch_size=11))
    _close(C, C.T, 1e-12)
    assert torch.linalg.eigvalsh(C).min() >= -1e-10 * C.abs().max()


@pytest.mark.parametrize("loss_name", ["mse", "half-sse"])
def test_ggn_equals_the_hessian_for_a_linear_model_with_squared_errors(loss_name):
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randn(20, 3, dtype=torch.float64)
    loss = make_loss(loss_name)
    ggn = dense_matrix(GGNOperator(model, loss, x, y))
    hess = dense_matrix(HessianOperator(model, loss, x, y))
    _close(ggn, hess, 1e-12)


def test_ggn_differs_from_the_hessian_of_a_nonlinear_model():
    model, x, y = problem("mlp")
    ggn = dense_matrix(GGNOperator(model, loss_fn, x, y))
    assert (ggn - exact_hessian(model, x, y)).abs().max() > 1e-3


def test_monte_carlo_fisher_at_given_labels_is_the_empirical_fisher_there():
    model, x, y = problem("cnn-bn")
    labels = (y + 1) % 3

    class Fixed(CategoricalSampler):  # a "sampler" that returns known labels
        def labels(self, outputs, noise):
            return labels

    op = MonteCarloFisherOperator(model, loss_fn, x, y, batch_size=len(x), sampler=Fixed())
    _close(dense_matrix(op), dense_fisher(model, x, labels))


def _mc_fisher_product(batch_size, partition=SINGLE, loss_name="cross-entropy", samples=2):
    if loss_name == "cross-entropy":
        model, x, y = problem("cnn-bn")
        loss = loss_fn
    else:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
        x, y = torch.randn(30, 4, dtype=torch.float64), torch.randn(30, 3, dtype=torch.float64)
        loss = make_loss(loss_name)
    op = MonteCarloFisherOperator(
        model, loss, x, y, batch_size=batch_size, partition=partition,
        sampler=sampler_for_loss(loss_name), mc_samples=samples, mc_seed=5,
    )  # fmt: skip
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return op.matvec(v)


@pytest.mark.parametrize("loss_name", ["cross-entropy", "half-sse", "mse"])
def test_monte_carlo_fisher_does_not_depend_on_the_batch_size(loss_name):
    every = _mc_fisher_product(30, loss_name=loss_name)
    for batch_size in (3, 7):
        _close(_mc_fisher_product(batch_size, loss_name=loss_name), every, 1e-10)


def test_monte_carlo_fisher_of_two_shards_sums_to_the_product_of_one_process():
    # Partition's collectives are the identity in one process: each shard's product is its
    # partial sum (its examples, weighted by the global count), as before the all-reduce.
    shards = [_mc_fisher_product(4, Partition(rank, 2)) for rank in range(2)]
    _close(shards[0] + shards[1], _mc_fisher_product(30), 1e-10)


def _mc_fisher_on_rank(partition):
    torch.set_num_threads(1)
    return _mc_fisher_product(4, partition)


@pytest.mark.slow
def test_monte_carlo_fisher_over_two_gloo_ranks_is_the_operator_of_one_process():
    from tests.ranks import run_ranks

    rank0, rank1 = run_ranks(_mc_fisher_on_rank, 2)
    _close(rank0, _mc_fisher_product(30), 1e-10)
    assert torch.equal(rank0, rank1)


def test_sampled_labels_of_an_example_depend_on_its_index_and_seed_only():
    logits = torch.randn(10, 4, dtype=torch.float64)
    whole = sampled_labels(categorical_sampler, logits, seed=1, first=0, samples=3)
    tail = sampled_labels(categorical_sampler, logits[6:], seed=1, first=6, samples=3)
    assert torch.equal(whole.view(3, 10)[:, 6:], tail.view(3, 4))
    other = sampled_labels(categorical_sampler, logits, seed=2, first=0, samples=3)
    assert not torch.equal(other, whole)


def test_monte_carlo_fisher_converges_to_the_ggn_for_cross_entropy():
    # E_{y ~ p} [g g^T] = J^T (diag p - p p^T) J: the GGN, for the negative log-likelihood.
    model, x, y = problem("mlp", samples=10)
    op = MonteCarloFisherOperator(model, loss_fn, x, y, mc_samples=1000, mc_seed=1)
    mc, ggn = dense_matrix(op), dense_ggn(model, x, y)
    assert torch.linalg.matrix_norm(mc - ggn) < 0.1 * torch.linalg.matrix_norm(ggn)


def test_monte_carlo_fisher_is_one_fixed_matrix_and_depends_on_its_seed():
    model, x, y = problem("mlp")
    op = MonteCarloFisherOperator(model, loss_fn, x, y, batch_size=7, mc_seed=3)
    v = torch.randn(op.dim, dtype=torch.float64)
    first = op.matvec(v)
    assert torch.equal(op.matvec(v), first)
    again = MonteCarloFisherOperator(model, loss_fn, x, y, batch_size=7, mc_seed=3).matvec(v)
    other = MonteCarloFisherOperator(model, loss_fn, x, y, batch_size=7, mc_seed=4).matvec(v)
    assert torch.equal(again, first) and not torch.allclose(other, first)


@pytest.mark.parametrize("loss_name", ["half-sse", "mse"])
def test_gaussian_samples_have_the_variance_whose_likelihood_is_the_loss(loss_name):
    outputs = torch.zeros(20000, 4, dtype=torch.float64)
    draws = sampled_labels(sampler_for_loss(loss_name), outputs, seed=0, first=0, samples=1)
    expected = 1.0 if loss_name == "half-sse" else 4 / 2
    assert abs(float(draws.var()) / expected - 1) < 0.03


def test_categorical_samples_follow_the_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0]]).repeat(30000, 1)
    draws = sampled_labels(categorical_sampler, logits, seed=0, first=0, samples=1)
    frequencies = torch.bincount(draws, minlength=3).double() / len(draws)
    assert torch.allclose(frequencies, F.softmax(logits[0].double(), 0), atol=0.01)


@pytest.mark.parametrize("curvature", ["ggn", "fisher"])
def test_graphs_beyond_the_memory_budget_are_rebuilt_with_the_same_products(curvature):
    model, x, y = problem("residual")
    kept = CURVATURES[curvature](model, loss_fn, x, y, batch_size=10)
    rebuilt = CURVATURES[curvature](model, loss_fn, x, y, batch_size=10, memory_budget=0)
    v = torch.randn(kept.dim, dtype=torch.float64)
    for _ in range(2):
        _close(rebuilt.matvec(v), kept.matvec(v), 1e-12)
    assert len(rebuilt.engine.graphs) == 0 and len(kept.engine.graphs) == 3


def test_lanczos_finds_the_top_ggn_eigenvalues():
    model, x, y = problem("cnn-bn")
    op = GGNOperator(model, loss_fn, x, y)
    eig = lanczos_eigs(op, 3, tol=1e-8)
    exact = torch.linalg.eigvalsh(dense_ggn(model, x, y)).flip(0)[:3]
    assert torch.allclose(torch.as_tensor(eig.eigenvalues), exact, rtol=1e-6)


def test_every_registered_curvature_names_itself():
    assert list(CURVATURES) == ["hessian", "ggn", "fisher", "fisher-mc"]
    assert all(cls.curvature == name for name, cls in CURVATURES.items())


def test_the_cli_offers_exactly_the_registered_curvatures():
    from landscape.cli.common import CURVATURE_CHOICES

    assert tuple(CURVATURES) == CURVATURE_CHOICES


def test_the_conveniences_take_a_curvature():
    from landscape.curvature import hessian_eigenvalues

    model, x, y = problem("mlp")
    eig = hessian_eigenvalues(model, loss_fn, x, y, k=1, tol=1e-8, curvature="fisher")
    top = torch.linalg.eigvalsh(dense_fisher(model, x, y))[-1]
    assert abs(eig.eigenvalues[0] - float(top)) < 1e-6 * float(top)


DENSE = {
    "hessian": lambda model, x, y: exact_hessian(model, x, y),
    "ggn": dense_ggn,
    "fisher": dense_fisher,
}


@pytest.mark.parametrize("curvature", list(DENSE))
def test_every_engine_s_batch_product_is_the_batch_s_dense_matrix_times_v(curvature):
    # The protocol: product(index, parts) gives C_b v per parameter, shaped like the parts, and
    # release() frees what is kept without changing later products.
    model, x, y = problem("mlp")
    op = CURVATURES[curvature](model, loss_fn, x, y, batch_size=len(x))
    v = torch.randn(op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    expected = DENSE[curvature](model, x, y) @ v
    parts = op.split(v)
    with evaluation_context(model, "eval"):
        first = op.engine.product(0, parts)
        op.engine.release()
        again = op.engine.product(0, parts)
    assert [p.shape for p in first] == [p.shape for p in parts]
    for product in (first, again):
        _close(torch.cat([p.reshape(-1) for p in product]), expected)
