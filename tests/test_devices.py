"""Device and dtype resolution."""

import pytest
import torch

from landscape.devices import resolve_device, resolve_dtype, seed_everything
from landscape.errors import UserError


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert isinstance(resolve_device("auto"), torch.device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_user_error():
    with pytest.raises(UserError, match="no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("bad", ["gpu", "tpu:0"])
def test_unknown_device_is_a_user_error(bad):
    with pytest.raises(UserError, match="unknown device"):
        resolve_device(bad)


def test_dtype_names():
    assert resolve_dtype("float64") is torch.float64
    with pytest.raises(UserError):
        resolve_dtype("float8")


def test_seeding_repeats_draws():
    seed_everything(3)
    a = torch.randn(3)
    seed_everything(3)
    assert torch.equal(a, torch.randn(3))
