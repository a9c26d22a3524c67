"""`landscape hessian --curvature` and `--blocks` end to end on a tiny digits checkpoint."""

import json

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.curvature import hessian_eigenvalues
from landscape.data import fixed_subset, load_dataset
from landscape.losses import make_loss
from landscape.models import build_model
from tests.cli.test_hessian_cli import _save

FAST = ["--samples", "64", "--device", "cpu", "--tol", "1e-6", "--batch-size", "32"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-c", numbered=False)
    torch.manual_seed(0)
    return _save(
        folder / "epoch-002-sgd.pt", build_model("cnn-bn", (1, 8, 8), 10), "cnn-bn", 2, "sgd"
    )


def _subset():
    x, y = fixed_subset(*load_dataset("digits").split("train"), 64, 0)
    return x.float(), y


@pytest.mark.parametrize("curvature", ["ggn", "fisher", "fisher-mc"])
def test_curvature_is_analysed_and_recorded(ckpt, tmp_path, curvature):
    out = tmp_path / "h.h5"
    argv = ["hessian", str(ckpt), "--curvature", curvature, "--top-k", "2", *FAST]
    assert main([*argv, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        group = f["hessian/run-c_epoch-002-sgd"]
        assert group.attrs["curvature"] == curvature
        eigenvalues = group["eigenvalues"][()]
    if curvature == "fisher-mc":
        assert np.all(eigenvalues > 0)
        return
    model = build_model("cnn-bn", (1, 8, 8), 10)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    x, y = _subset()
    expected = hessian_eigenvalues(
        model.eval(), make_loss(), x, y, k=2, tol=1e-8, curvature=curvature, batch_size=32
    ).eigenvalues
    assert np.allclose(eigenvalues, expected, rtol=1e-5)


def test_the_monte_carlo_fisher_does_not_depend_on_the_batch_size(ckpt, tmp_path):
    def top(batch_size):
        out = tmp_path / f"h{batch_size}.h5"
        argv = ["hessian", str(ckpt), "--curvature", "fisher-mc", "--fisher-samples", "2"]
        fast = [*FAST[:-1], str(batch_size)]  # FAST ends with the batch size
        assert main([*argv, *fast, "--tol", "1e-8", "--out", str(out)]) == 0
        with h5py.File(out) as f:
            return f["hessian/run-c_epoch-002-sgd/eigenvalues"][()]

    assert np.allclose(top(7), top(64), rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--curvature", "fisher-mc", "--label-smoothing", "0.1"], "negative log-likelihood"),
        (["--fisher-samples", "4"], "--fisher-samples"),
        (["--curvature", "ggn", "--fisher-samples", "1"], "--fisher-samples"),
    ],
)
def test_curvature_options_that_do_not_apply_are_errors(ckpt, tmp_path, capsys, argv, message):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpt), *argv, *FAST, "--out", str(out)]) != 0
    assert message in capsys.readouterr().err and not out.exists()


def test_blocks_are_stored_per_layer_with_their_parameters_and_plotted(ckpt, tmp_path, capsys):
    out = tmp_path / "h.h5"
    argv = ["hessian", str(ckpt), "--blocks", "layer", "--curvature", "ggn", "--top-k", "2"]
    assert main([*argv, "--trace", "--trace-rel-stderr", "0.3", *FAST, "--out", str(out)]) == 0
    model = build_model("cnn-bn", (1, 8, 8), 10)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    layers = [name for name, m in model.named_modules() if list(m.parameters(recurse=False))]
    x, y = _subset()
    with h5py.File(out) as f:
        blocks = f["hessian/run-c_epoch-002-sgd/blocks"]
        assert sorted(blocks) == sorted(layers)
        for layer in layers:
            names = [f"{layer}.{n}" for n, _ in model.get_submodule(layer).named_parameters()]
            block = blocks[layer]
            assert json.loads(block.attrs["parameter_names"]) == names
            assert block["trace"][()] > 0
            expected = hessian_eigenvalues(
                model.eval(), make_loss(), x, y, k=2, tol=1e-8, curvature="ggn", parameters=names
            ).eigenvalues
            assert np.allclose(block["eigenvalues"][()], expected, rtol=1e-4)
    assert main(["plot", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert "hessian-blocks-run-c_epoch-002-sgd" in capsys.readouterr().out


def test_a_block_expression_that_matches_nothing_is_an_error(ckpt, tmp_path, capsys):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpt), "--blocks", "nothing", *FAST, "--out", str(out)]) != 0
    assert "matches no trainable parameter" in capsys.readouterr().err and not out.exists()


@pytest.fixture(scope="module")
def run_pair(tmp_path_factory):
    """Two nearby checkpoints of one run (the second a small step away from the first)."""
    folder = tmp_path_factory.mktemp("run-w", numbered=False)
    torch.manual_seed(1)
    model = build_model("mlp", (1, 8, 8), 10)
    first = _save(folder / "epoch-001-sgd.pt", model, "mlp", 1, "sgd")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    return first, _save(folder / "epoch-002-sgd.pt", model, "mlp", 2, "sgd")


@pytest.mark.parametrize("warm", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_the_next_checkpoint_of_a_run_starts_from_the_previous_ritz_vectors(
    run_pair, tmp_path, warm
):
    out = tmp_path / "h.h5"
    flag = "--warm-start" if warm else "--no-warm-start"
    argv = ["hessian", *map(str, run_pair), "--top-k", "1", flag, *FAST, "--out", str(out)]
    assert main(argv) == 0
    with h5py.File(out) as f:
        first, second = (f[f"hessian/run-w_epoch-00{i}-sgd/eigenvalues"] for i in (1, 2))
        assert first.attrs["start"] == "random"
        assert second.attrs["start"] == ("warm" if warm else "random")
        assert second.attrs["converged"] and second.attrs["stop"] == "gap"
        if warm:
            assert second.attrs["hvp_count"] < first.attrs["hvp_count"]
