"""analysis_mode: the chosen BatchNorm statistics, and no side effects."""

import pytest
import torch
from torch import nn

from landscape.bn import analysis_mode, has_batchnorm


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 2)
    )


def test_eval_mode_uses_running_statistics_and_no_dropout():
    net = _net().train()
    x = torch.randn(8, 4)
    with analysis_mode(net, "eval"):
        assert not net[1].training and not net[3].training
        a, b = net(x), net(x)
    assert torch.equal(a, b)


def test_train_mode_uses_batch_statistics_without_changing_buffers():
    net = _net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(8, 4) * 3 + 1
    with analysis_mode(net, "train"):
        assert net[1].training and not net[3].training
        out = net(x)
    expected = nn.functional.batch_norm(
        net[0](x), None, None, net[1].weight, net[1].bias, training=True
    )
    assert torch.allclose(out, net[4](torch.relu(expected)))
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("initial", [True, False])
def test_previous_mode_is_restored(initial):
    net = _net().train(initial)
    with analysis_mode(net, "train"):
        pass
    assert all(m.training == initial for m in net.modules())


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError), analysis_mode(_net(), "frozen"):
        pass


def test_has_batchnorm():
    assert has_batchnorm(_net()) and not has_batchnorm(nn.Linear(2, 2))
