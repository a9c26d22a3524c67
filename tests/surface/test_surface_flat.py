"""Flat parameter vectors: by-name assembly, in-place writes, exact restoration."""

import pytest
import torch

from landscape.surface.flat import FlatParameters, preserved_state
from tests.surface.surface_models import tiny_bn_net


def test_set_writes_into_the_existing_parameter_tensors():
    model = tiny_bn_net(0)
    flat = FlatParameters(model)
    ids = [id(p) for p in model.parameters()]
    vec = torch.arange(flat.dim, dtype=torch.float32)
    flat.set(vec)
    assert [id(p) for p in model.parameters()] == ids
    assert torch.equal(flat.get(), vec)
    assert flat.dim == sum(p.numel() for p in model.parameters())


def test_from_dict_matches_by_name_whatever_the_order():
    model = tiny_bn_net(0)
    flat = FlatParameters(model)
    named = {n: p.detach() for n, p in model.named_parameters()}
    assert torch.equal(flat.from_dict(dict(reversed(list(named.items())))), flat.get())


def test_buffers_can_be_included_by_name():
    model = tiny_bn_net(0)
    flat = FlatParameters(model, ["bn.running_mean", "fc.bias"])
    assert torch.equal(flat.get(), torch.cat([model.bn.running_mean, model.fc.bias.detach()]))


def test_preserved_state_restores_parameters_buffers_and_flags():
    model = tiny_bn_net(0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with preserved_state(model):
        FlatParameters(model).set(torch.zeros(FlatParameters(model).dim))
        model.bn.running_var.fill_(9.0)
        model.eval()
    assert model.training and model.bn.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_wrong_length_vector_is_refused():
    with pytest.raises(ValueError, match="entries"):
        FlatParameters(tiny_bn_net(0)).set(torch.zeros(3))
