"""`torchrun --nproc_per_node=2 -m landscape ...`: one answer, written once, failures in one line.

Every test launches two Gloo ranks on the CPU with torchrun and compares with one process
(run in this process, the same command without torchrun).
"""

import h5py
import numpy as np
import pytest
import torch

from landscape import checkpoint
from landscape.cli import main
from landscape.models import build_model
from tests.cli.torchrun import ROOT, landscape_lines, torchrun

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

HESSIAN = ["--samples", "97", "--batch-size", "20", "--device", "cpu", "--dtype", "float64"]
HESSIAN += ["--top-k", "2", "--tol", "1e-8", "--density", "--density-runs", "1"]
HESSIAN += ["--density-steps", "10", "--trace", "--trace-method", "hutchinson"]
HESSIAN += ["--trace-max-hvps", "12", "--trace-rel-stderr", "1e-6"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("run-d") / "epoch-001-sgd.pt"
    checkpoint.save_checkpoint(
        path,
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": "cnn-bn",
            "model": build_model("cnn-bn", (1, 8, 8), 10).state_dict(),
            "epoch": 1,
            "phase": "sgd",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )
    return path


def _hessian_group(path):
    with h5py.File(path) as f:
        (group,) = f["hessian"].values()
        return {
            "eigenvalues": group["eigenvalues"][()],
            "trace": np.atleast_1d(group["trace"][()]),
            "density": group["density/values"][()],
            "world_size": int(group.attrs["world_size"]),
            "backend": str(group.attrs["backend"]),
        }


@pytest.fixture(scope="module")
def hessian_runs(ckpt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hessian-d")
    assert main(["hessian", str(ckpt), *HESSIAN, "--out", str(folder / "one.h5")]) == 0
    two = torchrun("hessian", ckpt, *HESSIAN, "--out", folder / "two.h5", cwd=folder)
    return folder, two


def test_hessian_on_two_ranks_equals_one_process(hessian_runs):
    folder, two = hessian_runs
    assert two.returncode == 0, two.stderr
    one, both = _hessian_group(folder / "one.h5"), _hessian_group(folder / "two.h5")
    for key in ("eigenvalues", "trace", "density"):
        np.testing.assert_allclose(both[key], one[key], rtol=1e-10, atol=0)
    assert (one["world_size"], one["backend"]) == (1, "none")
    assert (both["world_size"], both["backend"]) == (2, "gloo")


def test_only_rank_zero_prints_results_and_progress(hessian_runs):
    _, two = hessian_runs
    assert two.stdout.count("wrote ") == 1 and two.stdout.count("lambda1") == 1
    assert sum(line.startswith("top-2 eigenvalues:") for line in two.stderr.splitlines()) == 1


def test_a_fault_on_one_rank_ends_every_rank_with_one_line(ckpt, tmp_path):
    out = tmp_path / "f.h5"
    fault = {"LANDSCAPE_TEST_FAULT_RANK": "1", "LANDSCAPE_TEST_FAULT_AT": "3"}
    run = torchrun(
        "hessian",
        ckpt,
        *HESSIAN,
        "--out",
        out,
        script=ROOT / "tests/cli/fault_on_rank.py",
        cwd=tmp_path,
        env=fault,
    )
    assert run.returncode != 0
    lines = landscape_lines(run.stderr)
    assert any("injected fault" in line and line.endswith("[rank 1 of 2]") for line in lines)
    assert len(lines) == 2, lines  # rank 0 too: the peer is gone (or torchrun stopped it)
    assert "landscape/cli" not in run.stderr  # no traceback of ours
    assert not out.exists()


def test_bad_input_is_one_error_line_per_rank(tmp_path):
    run = torchrun("hessian", tmp_path / "missing.pt", "--device", "cpu", cwd=tmp_path)
    assert run.returncode != 0
    lines = landscape_lines(run.stderr)
    assert sorted(lines) == [
        f"landscape: error: checkpoint {tmp_path / 'missing.pt'} does not exist [rank {r} of 2]"
        for r in (0, 1)
    ]


def test_help_is_printed_once(tmp_path):
    run = torchrun("--help", cwd=tmp_path, timeout=60)
    assert run.returncode == 0 and run.stdout.count("usage: landscape") == 1
