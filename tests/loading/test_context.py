"""The analysis context: one typed request -> models, data, partition and batch policy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.data import load_dataset
from landscape.errors import UserError
from landscape.loading.checkpoint import FORMAT, save_checkpoint
from landscape.loading.context import (
    FIXED_BATCH,
    AnalysisRequest,
    BatchPolicy,
    build_context,
)
from landscape.loading.loader import DataSource, ModelSource
from landscape.models import build_model
from landscape.parallel import SINGLE

DIGITS = DataSource(dataset="digits")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("cnn-bn", (1, 8, 8), 10).eval()
    path = tmp_path_factory.mktemp("ctx") / "c.pt"
    payload = {
        "format": FORMAT,
        "version": 1,
        "arch": "cnn-bn",
        "model": model.state_dict(),
        "epoch": 1,
        "phase": "sgd",
        "config": {"dataset": "digits", "arch": "cnn-bn"},
        "history": [],
    }
    save_checkpoint(path, payload)
    return path, model


def test_a_request_gives_the_models_on_the_device_in_the_dtype_with_their_data(checkpoint):
    path, model = checkpoint
    context = build_context(
        AnalysisRequest((path,), ModelSource(), DIGITS, device="cpu", dtype="float64")
    )
    (target,) = context.targets
    x = context.data.test_x[:8].double()
    assert context.dtype == torch.float64 and context.device == torch.device("cpu")
    assert context.partition is SINGLE and context.data.name == "digits"
    torch.testing.assert_close(target.model(x), model.double()(x), rtol=0, atol=0)
    model.float()


def test_the_subset_is_drawn_by_the_subset_seed_alone(checkpoint):
    context = build_context(AnalysisRequest((checkpoint[0],), data=DIGITS, device="cpu"))
    x1, y1 = context.subset("train", 20, 3)
    torch.manual_seed(123)  # the global generator plays no part
    x2, y2 = context.subset("train", 20, 3)
    x3, _ = context.subset("train", 20, 4)
    assert x1.shape == (20, 1, 8, 8) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_a_seed_seeds_the_global_generators_before_loading(checkpoint):
    def draw(seed):
        torch.manual_seed(1000 + seed)  # what ran before plays no part
        build_context(AnalysisRequest((checkpoint[0],), data=DIGITS, device="cpu", seed=seed))
        return torch.rand(3)

    assert torch.equal(draw(7), draw(7)) and not torch.equal(draw(7), draw(8))


def test_more_checkpoints_load_later_on_the_same_data_with_the_fit_check(tmp_path, checkpoint):
    digits = load_dataset("digits")
    context = build_context(AnalysisRequest(device="cpu"), data=digits)
    assert context.targets == [] and context.data is digits
    (target,) = context.load([checkpoint[0]])
    assert target.arch == "cnn-bn"
    (tmp_path / "f.py").write_text(
        "import torch.nn as nn\ndef net():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))\n"
    )
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)).state_dict(), tmp_path / "w.pt")
    wide = build_context(
        AnalysisRequest(model=ModelSource(arch=f"{tmp_path / 'f.py'}:net"), device="cpu"),
        data=digits,
    )
    with pytest.raises(UserError, match=r"does not accept inputs of shape \[1, 8, 8\]"):
        wide.load([tmp_path / "w.pt"])


@pytest.mark.parametrize(
    ("given", "examples", "expected"),
    [(None, None, FIXED_BATCH), (None, 100, 100), (None, 10_000, FIXED_BATCH), (7, 100, 7)],
)
def test_the_fixed_batch_is_the_given_one_else_512_or_the_subset(given, examples, expected):
    assert BatchPolicy(given).fixed(examples) == expected
