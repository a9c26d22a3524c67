"""Worst-case and adaptive worst-case sharpness (landscape.sharpness.worst_case)."""

import pytest
import torch
from torch import nn

from landscape.losses import make_loss
from landscape.sharpness import worst_case_sharpness, worst_case_sharpness_radii
from landscape.sharpness.worst_case import apgd_checkpoints
from tests.sharpness.quadratic import Quadratic, dummy_data, mean_loss, spd_matrix

EIGENVALUES = [5.0, 3.0, 2.0, 1.0, 0.5, 0.1]


@pytest.mark.parametrize("rho", [1e-3, 0.05, 1.0])
def test_worst_case_at_quadratic_minimum_is_rho_squared_lambda_max_over_two(rho):
    hessian, _ = spd_matrix(EIGENVALUES)
    x, y = dummy_data()
    result = worst_case_sharpness(Quadratic(hessian), mean_loss, x, y, rho=rho, steps=60)
    assert result.value == pytest.approx(rho**2 * max(EIGENVALUES) / 2, rel=1e-9)
    assert result.loss == pytest.approx(0.0, abs=1e-15)


def test_worst_case_never_exceeds_the_true_maximum():
    hessian, _ = spd_matrix(EIGENVALUES, seed=3)
    x, y = dummy_data()
    for steps in (1, 3, 10):
        value = worst_case_sharpness(
            Quadratic(hessian), mean_loss, x, y, rho=0.1, steps=steps
        ).value
        assert 0 < value <= 0.1**2 * max(EIGENVALUES) / 2 * (1 + 1e-12)


def test_worst_case_leaves_the_weights_exactly_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    worst_case_sharpness(model, make_loss(), x, y, rho=0.5, steps=5, m=4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_m_sharpness_averages_the_maxima_of_the_groups():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(12, 4, dtype=torch.float64), torch.randint(0, 3, (12,))
    loss = make_loss()
    combined = worst_case_sharpness(model, loss, x, y, rho=0.3, steps=8, m=4, seed=0)
    assert combined.value == pytest.approx(sum(combined.extra["group_values"]) / 3, rel=1e-12)
    assert len(combined.extra["group_values"]) == 3
    # Per-group maxima are at least the whole-set maximum, on average (max of mean <= mean of max).
    whole = worst_case_sharpness(model, loss, x, y, rho=0.3, steps=8).value
    assert combined.value >= whole * 0.95
    assert min(combined.extra["group_values"]) > 0


def _relu_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)
    ).double()


def _rescaled(model: nn.Module, factor: float) -> nn.Module:
    """Scale the first layer (weights and bias) by c and the next layer's weights by 1/c:
    the same function, because ReLU is positively homogeneous."""
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin[0].weight.mul_(factor)
        twin[0].bias.mul_(factor)
        twin[2].weight.div_(factor)
    return twin


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_adaptive_worst_case_is_invariant_to_relu_layer_rescaling(norm):
    model = _relu_net(0)
    twin = _rescaled(model, 7.5)
    x, y = torch.randn(20, 5, dtype=torch.float64), torch.randint(0, 3, (20,))
    loss = make_loss()
    kwargs = dict(rho=0.2, steps=10, norm=norm, adaptive=True, m=10, seed=1)
    a = worst_case_sharpness(model, loss, x, y, **kwargs).value
    b = worst_case_sharpness(twin, loss, x, y, **kwargs).value
    assert a > 0
    assert b == pytest.approx(a, rel=1e-8)


def test_plain_worst_case_is_not_invariant_to_the_same_rescaling():
    model = _relu_net(0)
    twin = _rescaled(model, 7.5)
    x, y = torch.randn(20, 5, dtype=torch.float64), torch.randint(0, 3, (20,))
    a = worst_case_sharpness(model, make_loss(), x, y, rho=0.2, steps=10).value
    b = worst_case_sharpness(twin, make_loss(), x, y, rho=0.2, steps=10).value
    assert abs(a - b) > 1e-3 * abs(a)


def test_linf_ball_bounds_every_coordinate():
    # For L = 1/2 w^T diag(h) w at 0 the linf maximum is at a corner: rho^2 sum(h) / 2.
    h = torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)
    x, y = dummy_data()
    model = Quadratic(torch.diag(h))
    with torch.no_grad():
        model.w.fill_(0.0)
    # adaptive with eta=1 and w=0 gives scale 1: the plain linf ball.
    result = worst_case_sharpness(
        model, mean_loss, x, y, rho=0.1, steps=10, norm="linf", adaptive=True, adaptive_eta=1.0
    )
    assert result.value == pytest.approx(0.1**2 * h.sum().item() / 2, rel=1e-12)


def test_apgd_checkpoints_follow_croce_and_hein():
    assert sorted(apgd_checkpoints(100)) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_several_radii_in_one_pass_equal_separate_calls():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(12, 4, dtype=torch.float64), torch.randint(0, 3, (12,))
    loss = make_loss()
    radii = [0.05, 0.3, 0.1]
    swept = worst_case_sharpness_radii(model, loss, x, y, radii=radii, steps=6, m=4, seed=2)
    assert [r.params["rho"] for r in swept] == radii
    for rho, result in zip(radii, swept):
        alone = worst_case_sharpness(model, loss, x, y, rho=rho, steps=6, m=4, seed=2)
        assert result.value == pytest.approx(alone.value, rel=1e-12)
        assert result.extra["group_values"] == pytest.approx(alone.extra["group_values"], rel=1e-12)


def test_radii_sweep_on_a_quadratic_follows_rho_squared():
    hessian, _ = spd_matrix(EIGENVALUES)
    x, y = dummy_data()
    swept = worst_case_sharpness_radii(
        Quadratic(hessian), mean_loss, x, y, radii=[0.01, 0.1, 0.5], steps=60
    )
    assert [r.value for r in swept] == pytest.approx(
        [r**2 * max(EIGENVALUES) / 2 for r in (0.01, 0.1, 0.5)], rel=1e-9
    )
