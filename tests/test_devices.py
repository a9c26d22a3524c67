"""Device and dtype resolution."""

import pytest
import torch

from landscape.devices import resolve_device, resolve_dtype, seed_everything
from landscape.errors import UserError


def test_cpu_resolves_to_the_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "cpu"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_and_otherwise_the_cpu_never_mps(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


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


@pytest.fixture
def apple_silicon(monkeypatch):
    """A machine with MPS and no CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_mps_is_refused_in_one_line_because_it_has_no_float64(apple_silicon):
    with pytest.raises(
        UserError, match=r"^--device mps: Apple's MPS has no float64, .*--device cpu"
    ):
        resolve_device("mps")


def test_auto_on_apple_silicon_is_the_cpu(apple_silicon, caplog):
    with caplog.at_level("INFO", logger="landscape"):
        assert resolve_device("auto") == torch.device("cpu")
    assert "MPS has no float64" in caplog.text
