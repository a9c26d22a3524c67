"""SAM / ASAM steps against hand-computed updates, and BatchNorm statistics left alone."""

import copy

import pytest
import torch
from torch import nn

from landscape.train.sam import SAM, bn_stats_frozen


def _problem():
    """A linear least-squares model: L(W) = 1/(2n) sum_i ||W x_i - t_i||^2."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    t = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    w0 = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    return x, t, w0


def _grad(w, x, t):
    """dL/dW = (1/n) (W X^T - T^T) X, by hand."""
    return (w @ x.T - t.T) @ x / x.shape[0]


def _sam_model_step(w0, x, t, *, lr, momentum, weight_decay, rho, adaptive):
    model = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w0)
    base = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sam = SAM(base, rho=rho, adaptive=adaptive)

    def loss():
        return 0.5 * ((model(x) - t) ** 2).sum(dim=1).mean()

    sam.zero_grad()
    loss().backward()
    sam.first_step(zero_grad=True)
    loss().backward()
    sam.second_step(zero_grad=True)
    return model.weight.detach(), sam


@pytest.mark.parametrize("adaptive", [False, True], ids=["sam", "asam"])
def test_one_step_equals_hand_computed_update(adaptive):
    x, t, w0 = _problem()
    lr, wd, rho = 0.1, 5e-4, 0.3
    g = _grad(w0, x, t)
    if adaptive:  # ASAM: e = rho T^2 g / ||T g||, T = |w|
        e = rho * w0.abs() ** 2 * g / torch.linalg.norm(w0.abs() * g)
    else:  # SAM: e = rho g / ||g||
        e = rho * g / torch.linalg.norm(g)
    g_sam = _grad(w0 + e, x, t)
    # First SGD step with momentum: buffer = gradient (+ weight decay at the restored w).
    expected = w0 - lr * (g_sam + wd * w0)

    w1, _ = _sam_model_step(
        w0, x, t, lr=lr, momentum=0.9, weight_decay=wd, rho=rho, adaptive=adaptive
    )
    torch.testing.assert_close(w1, expected, rtol=1e-12, atol=1e-14)


def test_second_step_restores_the_weights_bit_for_bit():
    """w, not (w + e) - e: with a per-rank ascent the ranks' e differ, and rounding would make
    their weights drift apart."""
    model = nn.Linear(50, 40).double()
    start = [p.detach().clone() for p in model.parameters()]
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.0), rho=0.7)
    model(torch.randn(8, 50, dtype=torch.float64)).square().mean().backward()
    sam.first_step(zero_grad=False)
    assert not torch.equal(model.weight, start[0])
    sam.second_step()
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), start))


def test_step_with_closure_equals_first_and_second_step():
    x, t, w0 = _problem()
    expected, _ = _sam_model_step(
        w0, x, t, lr=0.1, momentum=0.9, weight_decay=0.0, rho=0.05, adaptive=False
    )
    model = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w0)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho=0.05)

    def closure():
        sam.zero_grad()
        loss = 0.5 * ((model(x) - t) ** 2).sum(dim=1).mean()
        loss.backward()
        return loss

    closure()
    sam.step(closure)
    torch.testing.assert_close(model.weight.detach(), expected, rtol=0, atol=0)


def test_rho_zero_is_plain_sgd():
    x, t, w0 = _problem()
    w1, _ = _sam_model_step(
        w0, x, t, lr=0.1, momentum=0.9, weight_decay=5e-4, rho=0.0, adaptive=False
    )
    torch.testing.assert_close(w1, w0 - 0.1 * (_grad(w0, x, t) + 5e-4 * w0), rtol=1e-12, atol=1e-14)


def test_state_dict_is_the_base_optimizers_and_carries_rho():
    x, t, w0 = _problem()
    _, sam = _sam_model_step(
        w0, x, t, lr=0.1, momentum=0.9, weight_decay=0.0, rho=0.07, adaptive=True
    )
    state = sam.state_dict()
    assert state == sam.base_optimizer.state_dict()
    assert state["param_groups"][0]["rho"] == 0.07 and state["param_groups"][0]["adaptive"] is True
    assert "momentum_buffer" in state["state"][0]


def test_learning_rate_set_on_either_object_is_shared():
    model = nn.Linear(3, 2)
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    sam = SAM(base)
    sam.param_groups[0]["lr"] = 0.01
    assert base.param_groups[0]["lr"] == 0.01


def test_negative_rho_is_refused():
    with pytest.raises(ValueError, match="rho"):
        SAM(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), rho=-0.1)


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()


def test_second_pass_leaves_batchnorm_statistics_untouched():
    model = _bn_model()
    reference = copy.deepcopy(model)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho=0.5)

    nn.functional.cross_entropy(model(x), y).backward()
    reference(x)  # the first pass alone: one update of the running statistics
    sam.first_step()
    with bn_stats_frozen(model):
        nn.functional.cross_entropy(model(x), y).backward()
    sam.second_step()

    for live, expected in zip(model[1].buffers(), reference[1].buffers()):
        torch.testing.assert_close(live, expected, rtol=0, atol=0)
    assert int(model[1].num_batches_tracked) == 1


def test_frozen_statistics_still_normalise_with_batch_statistics():
    model = _bn_model().train()
    x = torch.randn(16, 4, dtype=torch.float64) * 3 + 1
    expected = copy.deepcopy(model)(x)  # training mode: batch statistics
    with bn_stats_frozen(model):
        out = model(x)
    torch.testing.assert_close(out, expected)
    assert model[1].track_running_stats is True  # restored on exit
