"""GlobalBatchNorm (``--sync-bn`` on CPU ranks) is BatchNorm over the whole batch: on one rank it
matches torch's BatchNorm in outputs, gradients and running statistics (the 2-rank equality with
one process is in test_distributed_training.py)."""

import copy

import pytest
import torch
import torch.distributed as dist
from torch import nn

from landscape.train.sam import bn_stats_frozen
from landscape.train.sync_bn import GlobalBatchNorm, convert


@pytest.fixture
def one_rank_group(tmp_path):
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def model(bn=nn.BatchNorm2d):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), bn(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_on_one_rank_it_is_batchnorm(one_rank_group, momentum):
    x = torch.randn(6, 3, 5, 5, dtype=torch.float64)
    reference = model().double()
    reference(x)  # materialise the lazy layer
    reference[1].momentum = momentum
    ours = convert(copy.deepcopy(reference))
    assert isinstance(ours[1], GlobalBatchNorm)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    for _ in range(2):
        for net in (reference, ours):
            net.zero_grad()
            net(x).square().sum().backward()
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(reference.named_parameters(), ours.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)
    for (name, a), b in zip(reference.named_buffers(), ours.buffers()):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12, msg=name)
    reference.eval(), ours.eval()
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-12, atol=1e-12)


def test_sams_second_pass_leaves_its_running_statistics_alone(one_rank_group):
    net = convert(model())
    net(torch.randn(4, 3, 5, 5))
    before = [b.clone() for b in net.buffers()]
    with bn_stats_frozen(net):
        net(torch.randn(4, 3, 5, 5))
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))
