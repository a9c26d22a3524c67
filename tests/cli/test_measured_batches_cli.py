"""`landscape hessian` and `landscape sharpness` measure the batch of the work they repeat
(products, gradients, forwards), except where the batch defines BatchNorm statistics."""

from __future__ import annotations

import json

import h5py
import pytest
import torch

from landscape import batching
from landscape.cli import main
from landscape.loading import checkpoint
from landscape.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "epoch-002-sgd.pt"
    checkpoint.save_checkpoint(path, {
        "format": checkpoint.FORMAT, "version": checkpoint.VERSION, "arch": "mlp-bn",
        "model": build_model("mlp-bn", (1, 8, 8), 10).state_dict(), "epoch": 2, "phase": "sgd",
        "config": {"dataset": "digits"}, "history": [],
    })  # fmt: skip
    return path


@pytest.fixture
def kinds(monkeypatch) -> list[str]:
    """The work kinds whose batch was chosen (probed or cached) during the test."""
    seen: list[str] = []
    choose = batching.choose

    def recording(kind, *args, **kwargs):
        seen.append(kind)
        return choose(kind, *args, **kwargs)

    monkeypatch.setattr(batching, "choose", recording)
    return seen


HESSIAN = ["--samples", "64", "--top-k", "1", "--tol", "1e-2", "--no-trace"]


def _hessian_batch(out) -> int:
    with h5py.File(out) as f:
        (name,) = list(f["hessian"])
        return json.loads(f[f"hessian/{name}"].attrs["config"])["batch_size"]


def test_hessian_measures_the_product_batch(ckpt, tmp_path, kinds):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpt), *HESSIAN, "--out", str(out)]) == 0
    assert kinds == ["hvp"]
    assert _hessian_batch(out) in batching.candidate_sizes(64, step=2.0)


def test_hessian_in_train_mode_keeps_the_fixed_batch(ckpt, tmp_path, kinds):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpt), *HESSIAN, "--bn-mode", "train", "--out", str(out)]) == 0
    assert kinds == [] and _hessian_batch(out) == 64  # min(500, samples): one batch


@pytest.mark.parametrize(
    ("measure", "kind"),
    [("average-case", "forward"), ("gradient-norm", "gradient"), ("top-eigenvalue", "hvp")],
)
def test_sharpness_measures_the_batch_of_the_work_it_repeats(ckpt, tmp_path, kinds, measure, kind):
    args = [
        "sharpness",
        str(ckpt),
        "--measure",
        measure,
        "--samples",
        "64",
        "--draws",
        "2",
        "--tol",
        "1e-2",
    ]
    assert main([*args, "--out", str(tmp_path / "s.h5")]) == 0
    assert kinds == [kind]


def test_sharpness_in_train_mode_is_not_probed(ckpt, tmp_path, kinds):
    out = tmp_path / "s.h5"
    assert (
        main(
            [
                "sharpness",
                str(ckpt),
                "--measure",
                "gradient-norm",
                "--samples",
                "64",
                "--bn-mode",
                "train",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert kinds == []
