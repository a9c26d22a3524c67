"""``landscape.load``: a checkpoint file to model, data and metadata, as the commands load it."""

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape
from landscape.cli import main
from landscape.curvature import hessian_eigenvalues
from landscape.data import fixed_subset
from landscape.errors import UserError
from landscape.loading import checkpoint
from landscape.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_and_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api-run", numbered=False)
    torch.manual_seed(0)
    model = build_model("cnn-bn", (1, 8, 8), 10)
    ours = folder / "epoch-007-sam.pt"
    checkpoint.save_checkpoint(
        ours,
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": "cnn-bn",
            "model": model.state_dict(),
            "epoch": 7,
            "phase": "sam",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )
    plain = folder / "plain.pt"
    torch.save(
        {"epoch": 7, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, plain
    )
    return model, ours, plain


def test_a_landscape_checkpoint_needs_no_options(model_and_files):
    model, ours, _ = model_and_files
    loaded, data, meta = landscape.load(ours)
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    assert (meta["arch"], meta["epoch"], meta["phase"], meta["dataset"]) == (
        "cnn-bn",
        7,
        "sam",
        "digits",
    )
    assert meta["name"] == "api-run_epoch-007-sam" and meta["format"] == "landscape"
    assert data.split("train")[0].shape[1:] == (1, 8, 8)


def test_a_plain_state_dict_takes_the_command_lines_model_and_data_options(model_and_files):
    model, _, plain = model_and_files
    loaded, data, meta = landscape.load(plain, arch="cnn-bn", dataset="digits", dtype="float64")
    assert meta["format"] == "wrapped" and next(loaded.parameters()).dtype == torch.float64
    torch.testing.assert_close(
        loaded.state_dict()["classifier.weight"].float(), model.state_dict()["classifier.weight"]
    )


def test_bad_input_raises_the_command_lines_message(model_and_files):
    _, _, plain = model_and_files
    with pytest.raises(UserError, match="give --arch"):
        landscape.load(plain)


def test_the_loaded_model_gives_the_cli_s_numbers(model_and_files, tmp_path):
    _, ours, _ = model_and_files
    out = tmp_path / "h.h5"
    argv = [
        "hessian",
        str(ours),
        "--top-k",
        "2",
        "--no-trace",
        "--samples",
        "200",
        "--tol",
        "1e-6",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    model, data, meta = landscape.load(ours)
    x, y = fixed_subset(*data.split("train"), 200, seed=0)
    api = hessian_eigenvalues(
        model, F.cross_entropy, x, y, k=2, tol=1e-6, batch_size=500
    ).eigenvalues
    with h5py.File(out) as f:
        np.testing.assert_allclose(api, f[f"hessian/{meta['name']}/eigenvalues"][()], rtol=1e-5)
