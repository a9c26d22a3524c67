"""SAM escape dynamics (landscape.escape)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.escape import divergence_limit, fit_growth_rate, sam_escape
from landscape.losses import make_loss
from tests.sharpness.quadratic import Quadratic, dummy_data, mean_loss, spd_matrix

# lr * 15 < 2: gradient descent is stable at this minimum, SAM (factor -1.625) is not.
EIGENVALUES = [15.0, 4.0, 1.0, 0.2]
LR, RHO = 0.1, 0.05


def _factor(lam: float) -> float:
    return 1 - LR * lam - LR * RHO * lam**2


def test_unnormalized_sam_multiplies_each_eigencomponent_by_the_linear_stability_factor():
    hessian, q = spd_matrix(EIGENVALUES)
    coefficients = torch.tensor([1e-6, 2e-6, -1e-6, 3e-6], dtype=torch.float64)
    model = Quadratic(hessian, start=q @ coefficients)
    x, y = dummy_data()
    steps = 12
    sam_escape(model, mean_loss, x, y, rho=RHO, lr=LR, steps=steps, unnormalized=True)
    reached = q.T @ model.w.detach()
    predicted = coefficients * torch.tensor(
        [_factor(lam) ** steps for lam in EIGENVALUES], dtype=torch.float64
    )
    torch.testing.assert_close(reached, predicted, rtol=1e-9, atol=0)


def test_growth_rate_is_log_of_the_largest_unstable_factor():
    hessian, q = spd_matrix(EIGENVALUES)
    model = Quadratic(hessian, start=q @ torch.full((4,), 1e-8, dtype=torch.float64))
    x, y = dummy_data()
    # A quadratic has no other minimum: the escape grows without bound, so no divergence check.
    result = sam_escape(
        model,
        mean_loss,
        x,
        y,
        rho=RHO,
        lr=LR,
        steps=40,
        unnormalized=True,
        fit_window=(20, 40),
        divergence_factor=math.inf,
    )
    assert abs(1 - LR * 15.0) < 1 < abs(_factor(15.0))
    assert result.growth_rate == pytest.approx(math.log(abs(_factor(15.0))), rel=1e-4)
    assert result.growth_factor == pytest.approx(abs(_factor(15.0)), rel=1e-4)


def test_a_stable_minimum_is_not_escaped():
    hessian, q = spd_matrix([1.0, 0.5])
    model = Quadratic(hessian, start=q @ torch.tensor([1e-3, 1e-3], dtype=torch.float64))
    x, y = dummy_data()
    result = sam_escape(model, mean_loss, x, y, rho=RHO, lr=LR, steps=30, unnormalized=True)
    assert result.distance[-1] < 2e-3
    assert result.train_loss[-1] < result.train_loss[0]


def test_records_have_one_entry_per_step_and_eigenvalues_every_k_steps():
    hessian, _ = spd_matrix(EIGENVALUES)
    model = Quadratic(hessian, start=torch.full((4,), 0.1, dtype=torch.float64))
    x, y = dummy_data()
    calls = []

    def eigenvalue(m):
        calls.append(1)
        return 15.0

    result = sam_escape(
        model, mean_loss, x, y, rho=RHO, lr=0.01, steps=7, eig_every=3, eigenvalue_fn=eigenvalue
    )
    assert list(result.step) == list(range(8))
    assert result.distance[0] == 0 and np.all(result.distance[1:] > 0)
    assert np.isnan(result.eigenvalue).tolist() == [
        False,
        True,
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    assert len(calls) == 3
    assert not np.isnan(result.train_loss).any()


def test_normalized_sam_does_both_the_ascent_and_the_descent_step():
    # One step from w on a quadratic: w - lr H (w + rho H w / ||H w||).
    hessian, _ = spd_matrix(EIGENVALUES)
    w = torch.tensor([0.3, -0.2, 0.1, 0.5], dtype=torch.float64)
    model = Quadratic(hessian, start=w)
    x, y = dummy_data()
    sam_escape(model, mean_loss, x, y, rho=RHO, lr=LR, steps=1)
    g = hessian @ w
    expected = w - LR * hessian @ (w + RHO * g / g.norm())
    torch.testing.assert_close(model.w.detach(), expected, rtol=1e-12, atol=1e-14)


def test_momentum_and_weight_decay_follow_torch_sgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
    reference = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    twin = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        for p, r in zip(twin.parameters(), reference):
            p.copy_(r)
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.2, momentum=0.9, weight_decay=0.01)
    loss = make_loss()
    rho = 0.1
    for _ in range(3):
        grads = torch.autograd.grad(loss(twin(x), y), list(twin.parameters()))
        scale = rho / torch.sqrt(sum((g**2).sum() for g in grads))
        with torch.no_grad():
            for p, g in zip(twin.parameters(), grads):
                p.add_(g * scale)
        optimizer.zero_grad()
        loss(twin(x), y).backward()
        with torch.no_grad():
            for p, g in zip(twin.parameters(), grads):
                p.sub_(g * scale)
        optimizer.step()
    sam_escape(model, loss, x, y, rho=rho, lr=0.2, steps=3, momentum=0.9, weight_decay=0.01)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fit_growth_rate_recovers_an_exponential_and_refuses_too_few_points():
    distance = np.concatenate([[0.0], 1e-3 * 1.3 ** np.arange(1, 20), np.full(10, 1.0)])
    rate, window = fit_growth_rate(distance, (1, 15))
    assert rate == pytest.approx(math.log(1.3), rel=1e-10)
    assert window == (1, 15)
    assert math.isnan(fit_growth_rate(np.array([0.0, 1.0]))[0])


def test_a_diverging_run_stops_leaves_the_rest_nan_and_fits_no_growth_rate():
    # lr * lambda = 30 on a quadratic: unnormalised SAM blows up within a few steps.
    hessian, _ = spd_matrix([300.0, 1.0])
    model = Quadratic(hessian, start=torch.tensor([1.0, 1.0], dtype=torch.float64))
    x, y = dummy_data()
    result = sam_escape(
        model,
        mean_loss,
        x,
        y,
        rho=1.0,
        lr=0.1,
        steps=400,
        unnormalized=True,
        eig_every=1,
        eigenvalue_fn=lambda m: 300.0,
    )
    stop = int(result.diverged_at)
    assert result.diverged and 0 < stop < 400
    assert result.train_loss[stop] > divergence_limit(result.train_loss[0])
    assert np.isfinite(result.train_loss[: stop + 1]).all()
    assert (
        np.isnan(result.train_loss[stop + 1 :]).all() and np.isnan(result.eigenvalue[stop:]).all()
    )
    assert math.isnan(result.growth_rate) and result.fit_window == (-1, -1)


def test_the_divergence_limit_is_a_multiple_of_the_start_loss_but_not_of_almost_zero():
    assert divergence_limit(0.5) == pytest.approx(50.0)
    assert divergence_limit(1e-9) == divergence_limit(0.01) == pytest.approx(1.0)
    assert divergence_limit(0.5, factor=10) == pytest.approx(5.0)


@pytest.mark.parametrize("factor, diverges", [(1e3, True), (math.inf, False)])
def test_divergence_is_a_loss_above_the_stated_multiple_of_the_start(factor, diverges):
    hessian, _ = spd_matrix([300.0, 1.0])
    model = Quadratic(hessian, start=torch.tensor([1.0, 1.0], dtype=torch.float64))
    x, y = dummy_data()
    result = sam_escape(
        model,
        mean_loss,
        x,
        y,
        rho=1.0,
        lr=0.1,
        steps=20,
        unnormalized=True,
        divergence_factor=factor,
    )
    assert result.diverged == diverges
    if diverges:
        stop = int(result.diverged_at)
        limit = divergence_limit(result.train_loss[0], factor)
        assert result.train_loss[stop] > limit >= result.train_loss[stop - 1]
    else:
        assert np.isfinite(result.train_loss).all() and math.isfinite(result.growth_rate)


def test_a_finite_escape_has_diverged_at_nan_and_a_fitted_rate():
    hessian, q = spd_matrix(EIGENVALUES)
    model = Quadratic(hessian, start=q @ torch.full((4,), 1e-8, dtype=torch.float64))
    x, y = dummy_data()
    result = sam_escape(model, mean_loss, x, y, rho=RHO, lr=LR, steps=25, unnormalized=True)
    assert math.isnan(result.diverged_at) and not result.diverged
    assert math.isfinite(result.growth_rate)


def test_a_fit_window_before_the_divergence_is_still_fitted():
    hessian, q = spd_matrix(EIGENVALUES)
    model = Quadratic(hessian, start=q @ torch.full((4,), 1e-9, dtype=torch.float64))
    x, y = dummy_data()
    result = sam_escape(
        model, mean_loss, x, y, rho=RHO, lr=LR, steps=60, unnormalized=True, fit_window=(10, 30)
    )
    assert result.diverged and result.diverged_at > 30
    assert result.growth_rate == pytest.approx(math.log(abs(_factor(15.0))), rel=1e-3)
