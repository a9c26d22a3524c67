"""Gradient norm and Fisher-Rao norm (landscape.sharpness.gradient)."""

import pytest
import torch
from torch import nn

from landscape.losses import make_loss
from landscape.sharpness import fisher_rao_norm, gradient_norm
from tests.sharpness.quadratic import Quadratic, dummy_data, mean_loss, spd_matrix


@pytest.mark.parametrize("batch_size", [None, 3])
def test_gradient_norm_of_a_quadratic_is_norm_of_h_w(batch_size):
    hessian, _ = spd_matrix([3.0, 1.0, 0.2])
    w = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    x, y = dummy_data(7)
    result = gradient_norm(Quadratic(hessian, w), mean_loss, x, y, batch_size=batch_size)
    assert result.value == pytest.approx(torch.linalg.norm(hessian @ w).item(), rel=1e-12)


def _bias_free_relu(depth: int) -> nn.Sequential:
    torch.manual_seed(depth)
    layers, width = [], 5
    for _ in range(depth - 1):
        layers += [nn.Linear(width, 6, bias=False), nn.ReLU()]
        width = 6
    layers.append(nn.Linear(width, 4, bias=False))
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_fisher_rao_matches_liang_et_al_identity_for_bias_free_relu_nets(depth):
    # <w, grad_w l> = (L+1) <dl/df, f> for a bias-free ReLU net of L+1 layers (Liang et al. 2019).
    model = _bias_free_relu(depth)
    x, y = torch.randn(9, 5, dtype=torch.float64), torch.randint(0, 4, (9,))
    loss = make_loss()
    out = model(x).detach().requires_grad_(True)
    per_example = torch.autograd.grad(loss(out, y) * 9, out)[0]
    expected = depth * torch.sqrt(((per_example * out).sum(1) ** 2).mean()).item()
    assert fisher_rao_norm(model, loss, x, y, batch_size=4).value == pytest.approx(
        expected, rel=1e-10
    )


def test_fisher_rao_matches_per_example_gradients_with_biases_and_batchnorm():
    torch.manual_seed(1)
    model = (
        nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))
        .double()
        .eval()
    )
    model[1].running_mean.uniform_(-1, 1)
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.randint(0, 3, (6,))
    loss = make_loss()
    params = list(model.parameters())
    squares = []
    for i in range(6):
        grads = torch.autograd.grad(loss(model(x[i : i + 1]), y[i : i + 1]), params)
        squares.append(sum((p * g).sum() for p, g in zip(params, grads)) ** 2)
    expected = torch.sqrt(torch.stack(squares).mean()).item()
    assert fisher_rao_norm(model, loss, x, y).value == pytest.approx(expected, rel=1e-10)
