"""`torchrun --nproc_per_node=2 -m landscape ...`: one answer, written once, failures in one line.

Every test launches two Gloo ranks on the CPU with torchrun and compares with one process
(run in this process, the same command without torchrun).
"""

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.loading import checkpoint
from landscape.models import build_model
from tests.cli.torchrun import ROOT, landscape_lines, torchrun, two_nodes

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


def test_hessian_on_two_nodes_equals_one_process_and_node_zero_alone_writes(
    ckpt, hessian_runs, tmp_path
):
    """``--nnodes 2``: both processes have LOCAL_RANK 0, so nothing may key on it but the
    device; the global rank decides who writes and prints."""
    folder, _ = hessian_runs
    node0, node1 = two_nodes("hessian", ckpt, *HESSIAN, "--out", "two.h5", cwd=tmp_path)
    assert node0.returncode == 0 and node1.returncode == 0, node0.stderr + node1.stderr
    one, both = _hessian_group(folder / "one.h5"), _hessian_group(tmp_path / "two.h5")
    for key in ("eigenvalues", "trace", "density"):
        np.testing.assert_allclose(both[key], one[key], rtol=1e-10, atol=0)
    assert both["world_size"] == 2
    assert node0.stdout.count("wrote ") == 1 and "wrote " not in node1.stdout


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
    # Both ranks find the checkpoint missing; one that torchrun stops first (after the other
    # exited) says so instead, or nothing if it had not started the command yet.
    error = (
        f"landscape: error: checkpoint {tmp_path / 'missing.pt'} does not exist [rank {{}} of 2]"
    )
    stopped = "landscape: stopped by SIGTERM"
    lines = landscape_lines(run.stderr)
    assert 1 <= len(lines) <= 2 and any(line.startswith("landscape: error: ") for line in lines)
    for line in lines:
        assert line in (error.format(0), error.format(1)) or line.startswith(stopped), line


def test_help_is_printed_once(tmp_path):
    run = torchrun("--help", cwd=tmp_path, timeout=60)
    assert run.returncode == 0 and run.stdout.count("usage: landscape") == 1


SURFACE = ["--x=-1:1:5", "--y=-1:1:4", "--samples", "60", "--batch-size", "20"]
SURFACE += ["--device", "cpu", "--dtype", "float64", "--save-every", "0"]


def _surface(path, kind="surface"):
    with h5py.File(path) as f:
        (group,) = f[kind].values()
        return group["train_loss"][()], group["done"][()], int(group.attrs["world_size"])


@pytest.fixture(scope="module")
def one_process_surface(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("surface-1") / "s.h5"
    assert main(["surface", str(ckpt), *SURFACE, "--out", str(out)]) == 0
    return _surface(out)


def test_surface_on_two_ranks_equals_one_process(ckpt, one_process_surface, tmp_path):
    run = torchrun("surface", ckpt, *SURFACE, "--out", tmp_path / "s.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    loss, done, world = _surface(tmp_path / "s.h5")
    assert done.all() and world == 2
    np.testing.assert_allclose(loss, one_process_surface[0], rtol=1e-10, atol=0)
    assert run.stdout.count("20/20 points") == 1


def test_a_rank_killed_mid_surface_loses_nothing_and_one_process_resumes(
    ckpt, one_process_surface, tmp_path, caplog
):
    out = tmp_path / "s.h5"
    kill = {"LANDSCAPE_TEST_FAULT_RANK": "1", "LANDSCAPE_TEST_FAULT_AT": "4"}
    kill |= {"LANDSCAPE_TEST_FAULT_IN": "point", "LANDSCAPE_TEST_FAULT_KIND": "kill"}
    script = ROOT / "tests/cli/fault_on_rank.py"
    run = torchrun("surface", ckpt, *SURFACE, "--out", out, script=script, cwd=tmp_path, env=kill)
    assert run.returncode != 0
    assert len(landscape_lines(run.stderr)) == 1, run.stderr  # rank 0's; rank 1 was killed
    loss, done, _ = _surface(out)
    assert 8 <= done.sum() < done.size  # 4 points of each rank were done and gathered
    np.testing.assert_array_equal(loss[done], one_process_surface[0][done])
    with caplog.at_level("INFO"):
        assert main(["surface", str(ckpt), *SURFACE, "--out", str(out)]) == 0
    assert f"{done.sum()} of 20 points done" in caplog.text  # only the missing ones computed
    resumed, all_done, _ = _surface(out)
    assert all_done.all()
    np.testing.assert_allclose(resumed, one_process_surface[0], rtol=1e-10, atol=0)


def test_interpolation_on_two_ranks_equals_one_process(ckpt, tmp_path):
    other = tmp_path / "epoch-002-sgd.pt"
    torch.manual_seed(5)
    state = torch.load(ckpt, weights_only=True)
    state["model"] = build_model("cnn-bn", (1, 8, 8), 10).state_dict()
    checkpoint.save_checkpoint(other, state)
    args = ["interpolate", ckpt, other, "--alpha=0:1:7", *SURFACE[2:]]
    assert main([*map(str, args), "--out", str(tmp_path / "one.h5")]) == 0
    run = torchrun(*args, "--out", tmp_path / "two.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    one, two = (
        _surface(tmp_path / "one.h5", "interpolation"),
        _surface(tmp_path / "two.h5", "interpolation"),
    )
    assert two[1].all() and two[2] == 2
    np.testing.assert_allclose(two[0], one[0], rtol=1e-10, atol=0)


SHARPNESS = ["--samples", "90", "--device", "cpu", "--dtype", "float64", "--batch-size", "20"]
SHARPNESS += ["--measure", "worst-case", "average-case", "gradient-norm", "fisher-rao-norm"]
SHARPNESS += ["top-eigenvalue", "--rho", "0.05", "--steps", "3", "--draws", "4"]


def _sharpness(path):
    with h5py.File(path) as f:
        (group,) = f["sharpness"].values()
        values = {name: float(group[name][()]) for name in group}
        return values, int(group.attrs["world_size"])


def test_sharpness_on_two_ranks_equals_one_process(ckpt, tmp_path):
    assert main(["sharpness", str(ckpt), *SHARPNESS, "--out", str(tmp_path / "one.h5")]) == 0
    run = torchrun("sharpness", ckpt, *SHARPNESS, "--out", tmp_path / "two.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (one, _), (two, world) = _sharpness(tmp_path / "one.h5"), _sharpness(tmp_path / "two.h5")
    assert world == 2 and set(two) == set(one) and len(one) == 5
    for name, value in one.items():
        assert two[name] == pytest.approx(value, rel=1e-10, abs=1e-13), name


ESCAPE = ["--samples", "90", "--device", "cpu", "--dtype", "float64", "--batch-size", "20"]
ESCAPE += ["--steps", "4", "--rho", "0.05", "--lr", "0.5", "--eig-every", "2"]


def test_escape_on_two_ranks_equals_one_process(ckpt, tmp_path):
    assert main(["escape", str(ckpt), *ESCAPE, "--out", str(tmp_path / "one.h5")]) == 0
    run = torchrun("escape", ckpt, *ESCAPE, "--out", tmp_path / "two.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "two.h5") as b:
        (one,), (two,) = a["escape"].values(), b["escape"].values()
        assert int(two.attrs["world_size"]) == 2
        for name in ("distance", "train_loss", "eigenvalue"):
            np.testing.assert_allclose(two[name][()], one[name][()], rtol=1e-10, atol=1e-13)
        assert np.isfinite(one["eigenvalue"][()]).sum() == 3  # steps 0, 2 and 4
