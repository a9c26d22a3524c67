"""Average-case sharpness (landscape.sharpness.average_case)."""

import pytest
import torch
from torch import nn

from landscape.losses import make_loss
from landscape.sharpness import average_case_sharpness
from tests.sharpness.quadratic import Quadratic, dummy_data, mean_loss, spd_matrix

EIGENVALUES = [4.0, 2.0, 1.0, 1.0, 0.5, 0.25, 0.1, 0.05]


@pytest.mark.parametrize("sigma", [0.01, 0.3])
def test_isotropic_estimate_converges_to_sigma_squared_trace_over_two(sigma):
    hessian, _ = spd_matrix(EIGENVALUES)
    x, y = dummy_data()
    expected = sigma**2 * sum(EIGENVALUES) / 2
    result = average_case_sharpness(Quadratic(hessian), mean_loss, x, y, sigma=sigma, draws=1000)
    assert result.stderr < 0.03 * expected
    assert abs(result.value - expected) < 4 * result.stderr


def test_standard_error_shrinks_like_one_over_sqrt_draws():
    hessian, _ = spd_matrix(EIGENVALUES)
    x, y = dummy_data()
    few = average_case_sharpness(Quadratic(hessian), mean_loss, x, y, sigma=0.1, draws=100).stderr
    many = average_case_sharpness(Quadratic(hessian), mean_loss, x, y, sigma=0.1, draws=1600).stderr
    assert many == pytest.approx(few / 4, rel=0.3)


def test_antithetic_draws_remove_the_gradient_term_away_from_the_minimum():
    # Away from the minimum L(w+d) - L(w) = g.d + d^T H d / 2: antithetic pairs cancel g.d.
    hessian, _ = spd_matrix(EIGENVALUES)
    start = torch.ones(len(EIGENVALUES), dtype=torch.float64) * 3
    x, y = dummy_data()
    kwargs = dict(sigma=0.05, draws=200, seed=2)
    paired = average_case_sharpness(Quadratic(hessian, start), mean_loss, x, y, **kwargs)
    single = average_case_sharpness(
        Quadratic(hessian, start), mean_loss, x, y, antithetic=False, **kwargs
    )
    expected = 0.05**2 * sum(EIGENVALUES) / 2
    assert paired.stderr < single.stderr / 10
    assert abs(paired.value - expected) < 4 * paired.stderr


def test_adaptive_noise_scales_with_the_weights():
    # delta_i = sigma |w_i| eps_i on a diagonal quadratic centred away from w: the expected gap
    # is sigma^2 sum_i h_i w_i^2 / 2.
    h = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    model = Quadratic(torch.diag(h), start=w)
    with torch.no_grad():
        model.minimum.copy_(w)  # w is the minimum, weights non-zero
    x, y = dummy_data()
    result = average_case_sharpness(model, mean_loss, x, y, sigma=0.1, draws=1000, adaptive=True)
    expected = 0.1**2 * (h * w**2).sum().item() / 2
    assert abs(result.value - expected) < 4 * result.stderr


def test_average_case_restores_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))
    average_case_sharpness(model, make_loss(), x, y, sigma=0.1, draws=3, bn_mode="train")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
