"""Result names identify the checkpoint (run folder and file), and results never overwrite
another checkpoint's (issue 12, item 1)."""

import h5py
import pytest
import torch

from landscape.cli import main
from landscape.loading import checkpoint
from landscape.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

HESSIAN = ["--top-k", "1", "--no-trace", "--samples", "32", "--tol", "1e-2", "--device", "cpu"]


def _final_checkpoint(folder, seed: int):
    """What every landscape run ends with: ``<run>/epoch-004-sam.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    path = folder / "epoch-004-sam.pt"
    checkpoint.save_checkpoint(
        path,
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": "mlp",
            "model": build_model("mlp", (1, 8, 8), 10).state_dict(),
            "epoch": 4,
            "phase": "sam",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    return {
        "s0": _final_checkpoint(root / "checkpoints" / "digits-s0", seed=0),
        "s1": _final_checkpoint(root / "checkpoints" / "digits-s1", seed=1),
        # a different checkpoint whose run folder has the same name as s0's
        "elsewhere": _final_checkpoint(root / "copy" / "digits-s0", seed=2),
    }


def _eigenvalue(out, name):
    with h5py.File(out) as f:
        return float(f[f"hessian/{name}/eigenvalues"][0])


def test_final_checkpoints_of_two_runs_get_their_own_groups(runs, tmp_path, caplog):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(runs["s0"]), *HESSIAN, "--out", str(out)]) == 0
    first = _eigenvalue(out, "digits-s0_epoch-004-sam")
    assert main(["hessian", str(runs["s1"]), *HESSIAN, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert set(f["hessian"]) == {"digits-s0_epoch-004-sam", "digits-s1_epoch-004-sam"}
    assert _eigenvalue(out, "digits-s0_epoch-004-sam") == first
    assert "replacing" not in caplog.text and "another checkpoint" not in caplog.text


def test_one_or_several_checkpoints_give_the_same_names(runs, tmp_path):
    together, apart = tmp_path / "together.h5", tmp_path / "apart.h5"
    assert (
        main(["hessian", str(runs["s0"]), str(runs["s1"]), *HESSIAN, "--out", str(together)]) == 0
    )
    for key in ("s0", "s1"):
        assert main(["hessian", str(runs[key]), *HESSIAN, "--out", str(apart)]) == 0
    with h5py.File(together) as a, h5py.File(apart) as b:
        assert (
            set(a["hessian"])
            == set(b["hessian"])
            == {"digits-s0_epoch-004-sam", "digits-s1_epoch-004-sam"}
        )


def test_the_same_checkpoint_analysed_again_replaces_its_group_and_says_so(runs, tmp_path, caplog):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(runs["s0"]), *HESSIAN, "--out", str(out)]) == 0
    assert "replacing" not in caplog.text
    assert main(["hessian", str(runs["s0"]), *HESSIAN, "--top-k", "2", "--out", str(out)]) == 0
    err = caplog.text
    assert "replacing hessian/digits-s0_epoch-004-sam" in err and "same checkpoint" in err
    with h5py.File(out) as f:
        assert list(f["hessian"]) == ["digits-s0_epoch-004-sam"]
        assert f["hessian/digits-s0_epoch-004-sam/eigenvalues"].shape == (2,)


def test_another_checkpoint_under_the_same_name_is_written_beside_it(runs, tmp_path, caplog):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(runs["s0"]), *HESSIAN, "--out", str(out)]) == 0
    first = _eigenvalue(out, "digits-s0_epoch-004-sam")
    assert main(["hessian", str(runs["elsewhere"]), *HESSIAN, "--out", str(out)]) == 0
    err = caplog.text
    assert "holds the result of another checkpoint" in err and "digits-s0_epoch-004-sam-2" in err
    assert _eigenvalue(out, "digits-s0_epoch-004-sam") == first
    assert _eigenvalue(out, "digits-s0_epoch-004-sam-2") != first


@pytest.mark.parametrize("command", ["sharpness", "escape"])
def test_sharpness_and_escape_name_the_run_too(runs, tmp_path, command):
    out = tmp_path / "r.h5"
    extra = (
        ["--measure", "gradient-norm"]
        if command == "sharpness"
        else ["--rho", "0.05", "--lr", "0.01", "--steps", "2", "--eig-every", "0"]
    )
    for key in ("s0", "s1"):
        assert main([command, str(runs[key]), "--samples", "32", *extra, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert set(f[command]) == {"digits-s0_epoch-004-sam", "digits-s1_epoch-004-sam"}


def test_surfaces_of_two_runs_default_to_their_own_files(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in ("s0", "s1"):
        assert main(["surface", str(runs[key]), "--x=-1:1:3", "--samples", "32"]) == 0
    for run in ("digits-s0", "digits-s1"):
        with h5py.File(tmp_path / "analyses" / f"{run}_epoch-004-sam.h5") as f:
            assert list(f["surface"]) == [f"{run}_epoch-004-sam-random-1d"]


def test_interpolations_name_both_ends_and_keep_other_runs(runs, tmp_path):
    out = tmp_path / "i.h5"
    base = ["--alpha=0:1:3", "--samples", "32", "--out", str(out)]
    assert main(["interpolate", str(runs["s0"]), str(runs["s1"]), *base]) == 0
    assert main(["interpolate", str(runs["elsewhere"]), str(runs["s1"]), *base]) == 0
    with h5py.File(out) as f:
        assert set(f["interpolation"]) == {
            "digits-s0_epoch-004-sam-to-digits-s1_epoch-004-sam",
            "digits-s0_epoch-004-sam-to-digits-s1_epoch-004-sam-2",
        }
