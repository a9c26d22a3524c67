"""`landscape surface` and `landscape interpolate` end to end on digits checkpoints."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape import store
from landscape.cli import main
from landscape.data import fixed_subset, load_dataset
from landscape.evaluate import evaluate
from landscape.loading.checkpoint import save_checkpoint
from landscape.losses import make_loss
from landscape.models import build_model

SAMPLES = ["--samples", "150"]


def _checkpoint(
    path: Path, seed: int, *, arch: str = "mlp-bn", epoch: int = 1, phase: str = "sgd"
) -> Path:
    torch.manual_seed(seed)
    model = build_model(arch, (1, 8, 8), 10)
    with torch.no_grad():  # BatchNorm statistics as after training
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buf.uniform_(-0.3, 0.3)
    save_checkpoint(
        path,
        {
            "format": "landscape-checkpoint",
            "version": 1,
            "arch": arch,
            "model": model.state_dict(),
            "epoch": epoch,
            "phase": phase,
            "config": {"dataset": "digits", "arch": arch},
        },
    )
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("run-sf", numbered=False)
    out = {
        f"ep{i}": _checkpoint(
            folder / f"epoch-00{i}-{'sam' if i == 3 else 'sgd'}.pt",
            seed=i,
            epoch=i,
            phase="sam" if i == 3 else "sgd",
        )
        for i in range(4)
    }
    out["cnn"] = _checkpoint(folder / "cnn.pt", seed=0, arch="cnn")
    return out


def _own_metrics(path: Path, split: str = "train", samples: int = 150) -> tuple[float, float]:
    blob = torch.load(path, weights_only=True)
    model = build_model(blob["arch"], (1, 8, 8), 10)
    model.load_state_dict(blob["model"])
    model.eval()
    x, y = fixed_subset(*load_dataset("digits").split(split), samples, 0)
    return evaluate(model, x, y, make_loss("cross-entropy"))


def _group(path: Path, name: str) -> h5py.Group:
    f = h5py.File(path, "r")
    return f[name]


def test_non_square_2d_surface_layout(tmp_path, ckpts, capsys):
    out = tmp_path / "s.h5"
    assert (
        main(
            [
                "surface",
                str(ckpts["ep0"]),
                "--x=-1:1:5",
                "--y=0:0.5:3",
                "--out",
                str(out),
                "--split",
                "train,test",
                "--seed",
                "7",
                *SAMPLES,
            ]
        )
        == 0
    )
    assert f"{out}:surface/run-sf_epoch-000-sgd-random-2d" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        g = f["surface/run-sf_epoch-000-sgd-random-2d"]
        for name in ("train_loss", "train_acc", "test_loss", "test_acc", "done"):
            assert g[name].shape == (5, 3)
            assert g[name].dims[0][0].name.endswith("/x") and g[name].dims[1][0].name.endswith("/y")
        assert g["done"][()].all() and np.isfinite(g["train_loss"][()]).all()
        np.testing.assert_array_equal(g["y"][()], [0.0, 0.25, 0.5])
        names = {n for n, _ in build_model("mlp-bn", (1, 8, 8), 10).named_parameters()}
        assert set(g["directions/x"]) == names and set(g["directions/y"]) == names
        assert g["directions/x"].attrs["seed"] == 7
        assert all(k in g.attrs for k in store.PROVENANCE_KEYS)
        # Centre (x=0, y=0) equals the checkpoint's own metrics; the default --bn is eval.
        loss, acc = _own_metrics(ckpts["ep0"])
        assert g["train_loss"][2, 0] == pytest.approx(loss, rel=1e-6)
        assert g["train_acc"][2, 0] == acc


def test_xarray_sees_coordinates(tmp_path, ckpts):
    xr = pytest.importorskip("xarray")
    out = tmp_path / "s.h5"
    main(
        [
            "surface",
            str(ckpts["ep0"]),
            "--x=-1:1:4",
            "--y=-2:0:3",
            "--out",
            str(out),
            "--name",
            "plane",
            *SAMPLES,
        ]
    )
    ds = xr.open_dataset(out, engine="h5netcdf", group="surface/plane")
    assert ds["train_loss"].dims == ("x", "y")
    np.testing.assert_allclose(ds["x"].values, np.linspace(-1, 1, 4))
    np.testing.assert_allclose(ds["y"].values, [-2, -1, 0])
    ds.close()


def test_only_x_gives_a_1d_slice(tmp_path, ckpts):
    out = tmp_path / "s.h5"
    assert main(["surface", str(ckpts["ep1"]), "--x=-0.5:0.5:3", "--out", str(out), *SAMPLES]) == 0
    with h5py.File(out, "r") as f:
        g = f["surface/run-sf_epoch-001-sgd-random-1d"]
        assert g["train_loss"].shape == (3,) and "y" not in g and "y" not in g["directions"]


@pytest.mark.parametrize(("grid", "warns"), [("-1e-6:1e-6:2", True), ("-20:20:2", False)])
def test_a_pca_grid_that_leaves_out_trajectory_checkpoints_says_which_and_what_fits(
    tmp_path, ckpts, caplog, grid, warns
):
    traj = [str(ckpts[f"ep{i}"]) for i in range(4)]
    argv = [
        "surface",
        str(ckpts["ep3"]),
        "--directions",
        "pca",
        "--trajectory",
        *traj,
        f"--x={grid}",
        f"--y={grid}",
        "--out",
        str(tmp_path / "p.h5"),
        *SAMPLES,
    ]
    assert main(argv) == 0
    said = [r.getMessage() for r in caplog.records if "outside the grid" in r.getMessage()]
    assert bool(said) == warns
    if warns:
        assert "epoch-000-sgd" in said[0] and "omit --x/--y" in said[0] and "--x=" in said[0]


def test_pca_plane_stores_trajectory_and_true_versus_projected_loss(tmp_path, ckpts):
    out = tmp_path / "p.h5"
    traj = [str(ckpts[f"ep{i}"]) for i in range(4)]
    assert (
        main(
            [
                "surface",
                str(ckpts["ep3"]),
                "--directions",
                "pca",
                "--trajectory",
                *traj,
                "--x=-20:20:3",
                "--y=-20:20:3",
                "--bn",
                "recalibrate",
                "--out",
                str(out),
                *SAMPLES,
            ]
        )
        == 0
    )
    with h5py.File(out, "r") as f:
        g = f["surface/run-sf_epoch-003-sam-pca-2d"]
        evr = g["explained_variance_ratio"][()]
        assert evr.shape == (2,) and evr[0] >= evr[1] > 0 and evr.sum() <= 1 + 1e-9
        t = g["trajectory"]
        assert list(t["epoch"][()]) == [0, 1, 2, 3]
        assert [p.decode() for p in t["phase"][()]] == ["sgd", "sgd", "sgd", "sam"]
        assert t["done"][()].all() and t["projected_done"][()].all()
        # The centre is its own projection: true and projected loss agree there exactly.
        assert t["x"][3] == 0 and t["train_loss"][3] == t["projected_train_loss"][3]
        assert g["train_loss"][1, 1] == t["train_loss"][3]


def test_between_plane_puts_b_at_one_zero(tmp_path, ckpts):
    out = tmp_path / "b.h5"
    assert (
        main(
            [
                "surface",
                str(ckpts["ep0"]),
                "--directions",
                "between",
                "--other",
                str(ckpts["ep2"]),
                "--x=0:1:2",
                "--y=-1:1:3",
                "--bn",
                "eval",
                "--ignore",
                "none",
                "--out",
                str(out),
                *SAMPLES,
            ]
        )
        == 0
    )
    # (1, 0) is A + (B - A): B's parameters up to rounding, with A's BatchNorm statistics (eval).
    a, b = (torch.load(ckpts[k], weights_only=True)["model"] for k in ("ep0", "ep2"))
    model = build_model("mlp-bn", (1, 8, 8), 10)
    model.load_state_dict({k: b[k] if k in dict(model.named_parameters()) else a[k] for k in a})
    x, y = fixed_subset(*load_dataset("digits").split("train"), 150, 0)
    expected, _ = evaluate(model.eval(), x, y, make_loss("cross-entropy"))
    with h5py.File(out, "r") as f:
        g = f["surface/run-sf_epoch-000-sgd-between-epoch-002-sgd-2d"]
        assert g.attrs["a"] == str(ckpts["ep0"]) and g.attrs["b"] == str(ckpts["ep2"])
        assert g["train_loss"][1, 1] == pytest.approx(expected, rel=1e-5)
        loss_a, _ = _own_metrics(ckpts["ep0"])
        assert g["train_loss"][0, 1] == pytest.approx(loss_a, rel=1e-6)


def test_interpolation_end_points_equal_each_checkpoints_own_metrics(tmp_path, ckpts, capsys):
    out = tmp_path / "i.h5"
    assert (
        main(
            [
                "interpolate",
                str(ckpts["ep0"]),
                str(ckpts["ep1"]),
                "--alpha=-0.2:1.2:8",
                "--bn",
                "interpolate",
                "--out",
                str(out),
                *SAMPLES,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "loss barrier" in printed
    with h5py.File(out, "r") as f:
        g = f["interpolation/run-sf_epoch-000-sgd-to-epoch-001-sgd"]
        # error barriers are printed in percentage points, as the figures and the report show them
        frankle = 100 * g.attrs["barrier_train_error_frankle"]
        assert f"error barrier {frankle:.3g}% / " in printed
        alpha = g["alpha"][()]
        assert 0.0 in alpha and 1.0 in alpha and g["done"][()].all()
        for value, key in ((0.0, "ep0"), (1.0, "ep1")):
            i = int(np.flatnonzero(alpha == value)[0])
            for split in ("train", "test"):
                loss, acc = _own_metrics(ckpts[key], split)
                assert g[f"{split}_loss"][i] == pytest.approx(loss, rel=1e-6)
                assert g[f"{split}_acc"][i] == acc
        for key in (
            "barrier_train_loss_frankle",
            "barrier_train_loss_entezari",
            "barrier_test_error_frankle",
            "barrier_test_error_entezari",
        ):
            assert np.isfinite(g.attrs[key])
        assert g.attrs["bn_mode"] == "interpolate" and g.attrs["a"] == str(ckpts["ep0"])


def test_rerun_of_a_finished_command_computes_nothing_and_other_options_replace(
    tmp_path, ckpts, caplog
):
    caplog.set_level(logging.INFO, logger="landscape.surface")
    out = tmp_path / "s.h5"
    args = ["surface", str(ckpts["ep0"]), "--x=-1:1:3", "--out", str(out), "--name", "r", *SAMPLES]
    main(args)
    first = _read(out, "surface/r")
    main(args)
    assert "resuming" in caplog.text and "3 of 3 points done" in caplog.text
    np.testing.assert_array_equal(_read(out, "surface/r"), first)
    main([*args, "--seed", "1"])
    assert "replacing surface/r" in caplog.text and "seed" in caplog.text
    assert not np.array_equal(_read(out, "surface/r"), first)


def _read(path, group, name="train_loss"):
    with h5py.File(path, "r") as f:
        return f[group][name][()]


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["--x=1:-1:0"], 2, "NUM must be at least 1"),
        (["--x=a:b:c"], 2, "not a grid spec"),
        (["--y=1:0:5"], 2, "MIN must be smaller"),
        (["--directions", "pca"], 1, "needs --trajectory"),
        (["--directions", "between"], 1, "needs --other"),
        (
            ["--directions", "pca", "--trajectory", "CKPT_EP1", "--norm", "filter"],
            1,
            "does not apply",
        ),
        (["--split", "val"], 1, "--split"),
        (["--curvature", "ggn"], 1, "--curvature needs --directions hessian"),
        (["--fisher-samples", "2"], 1, "--fisher-samples needs --directions hessian"),
        (["--directions", "hessian", "--fisher-samples", "2"], 1, "option of --curvature"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, ckpts, capsys, argv, status, message):
    argv = [a.replace("CKPT_EP1", str(ckpts["ep1"])) for a in argv]
    out = tmp_path / "s.h5"
    with pytest.raises(SystemExit) if status == 2 else _nothing():
        code = main(["surface", str(ckpts["ep0"]), "--out", str(out), *argv])
        assert code == status
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and not out.exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_trajectory_of_another_architecture_is_refused(tmp_path, ckpts, capsys):
    out = tmp_path / "s.h5"
    code = main(
        [
            "surface",
            str(ckpts["ep0"]),
            "--directions",
            "pca",
            "--trajectory",
            str(ckpts["ep1"]),
            str(ckpts["cnn"]),
            "--out",
            str(out),
            *SAMPLES,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "different architecture" in err[0] and not out.exists()


@pytest.mark.parametrize("command", ["surface", "interpolate"])
def test_output_that_is_not_hdf5_is_left_untouched(tmp_path, ckpts, capsys, command):
    out = tmp_path / "notes.h5"
    out.write_text("my notes")
    extra = [str(ckpts["ep1"])] if command == "interpolate" else []
    assert main([command, str(ckpts["ep0"]), *extra, "--out", str(out)]) == 1
    assert "not an HDF5 file" in capsys.readouterr().err and out.read_text() == "my notes"


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, ckpts):
    args = [
        "surface",
        str(ckpts["ep0"]),
        "--x=-1:1:21",
        "--y=-1:1:21",
        "--samples",
        "500",
        "--split",
        "train,test",
        "--bn",
        "recalibrate",
        "--name",
        "k",
    ]
    killed = tmp_path / "killed.h5"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    # --save-every 0: a save after every point, so the kill lands during or between writes.
    proc = subprocess.Popen(
        [sys.executable, "-m", "landscape", *args, "--save-every", "0", "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = _done_count(killed)
            if done >= 20:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = _done_count(killed)
    assert 20 <= partial < 441  # killed part-way, file readable
    with h5py.File(killed, "r") as f:
        loss = f["surface/k/train_loss"][()]
        assert np.isnan(loss[~f["surface/k/done"][()]]).all()
    assert main([*args, "--out", str(killed)]) == 0
    fresh = tmp_path / "fresh.h5"
    assert main([*args, "--out", str(fresh)]) == 0
    for name in ("train_loss", "train_acc", "test_loss", "test_acc", "done"):
        np.testing.assert_array_equal(
            _read(killed, "surface/k", name), _read(fresh, "surface/k", name)
        )


def _done_count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with h5py.File(path, "r") as f:
            return int(f["surface/k/done"][()].sum()) if "surface/k/done" in f else 0
    except OSError:
        pytest.fail(f"{path} was unreadable while being written")


def test_pca_grid_without_bounds_covers_the_trajectory():
    from landscape.cli.surface import fit_grid

    grid = fit_grid(np.array([-19.5, -3.0, 0.0]), points=11)
    assert grid[0] < -19.5 and grid[-1] > 0 and 0.0 in grid and len(grid) == 11


@pytest.mark.slow
def test_hessian_plane_records_eigenvalues(tmp_path, ckpts):
    out = tmp_path / "h.h5"
    assert (
        main(
            [
                "surface",
                str(ckpts["ep1"]),
                "--directions",
                "hessian",
                "--x=-0.1:0.1:3",
                "--y=-0.1:0.1:3",
                "--out",
                str(out),
                "--samples",
                "100",
            ]
        )
        == 0
    )
    with h5py.File(out, "r") as f:
        g = f["surface/run-sf_epoch-001-sgd-hessian-2d"]
        first, second = g.attrs["eigenvalues"]
        assert first >= second and g.attrs["norm"] == "none"
        d = np.concatenate([v[()].ravel() for v in g["directions/x"].values()])
        assert np.linalg.norm(d) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.slow
def test_a_plane_of_gauss_newton_eigenvectors_records_its_curvature(tmp_path, ckpts, caplog):
    from landscape.curvature import hessian_eigenvalues

    out = tmp_path / "h.h5"
    argv = ["surface", str(ckpts["ep1"]), "--directions", "hessian", "--curvature", "ggn"]
    grid = ["--x=-0.1:0.1:3", "--y=-0.1:0.1:3", "--samples", "100", "--dtype", "float64"]
    caplog.set_level(logging.INFO, logger="landscape.progress")
    assert main([*argv, *grid, "--out", str(out)]) == 0
    assert any("GGN directions (top-2 eigenvectors)" in r.getMessage() for r in caplog.records)
    with h5py.File(out, "r") as f:
        g = f["surface/run-sf_epoch-001-sgd-ggn-2d"]  # beside a Hessian plane, not over it
        assert g.attrs["curvature"] == "ggn" and json.loads(g.attrs["config"])["curvature"] == "ggn"
        assert g["x"].attrs["label"] == "GGN eigenvector 1"
        recorded = g.attrs["eigenvalues"]
    blob = torch.load(ckpts["ep1"], weights_only=True)
    model = build_model(blob["arch"], (1, 8, 8), 10).double()
    model.load_state_dict(blob["model"])
    x, y = fixed_subset(*load_dataset("digits").split("train"), 100, 0)
    expected = hessian_eigenvalues(
        model.eval(), make_loss(), x.double(), y, k=2, tol=1e-8, curvature="ggn"
    ).eigenvalues
    assert np.allclose(recorded, expected, rtol=1e-4)


def test_interpolation_on_test_only_recomputes_bn_from_training_examples_and_resumes(
    tmp_path, ckpts, caplog
):
    caplog.set_level(logging.INFO, logger="landscape.surface")
    out = tmp_path / "i.h5"
    args = [
        "interpolate",
        str(ckpts["ep0"]),
        str(ckpts["ep1"]),
        str(ckpts["ep2"]),
        "--alpha=0:1:3",
        "--split",
        "test",
        "--out",
        str(out),
        "--name",
        "poly",
        *SAMPLES,
    ]
    assert main(args) == 0
    with h5py.File(out, "r") as f:
        g = f["interpolation/poly"]
        np.testing.assert_array_equal(g["alpha"][()], [0, 0.5, 1, 1.5, 2])
        assert set(g) >= {"test_loss", "test_acc"} and "train_loss" not in g
        assert g.attrs["bn_mode"] == "recalibrate" and "segment_barriers" in g.attrs
    assert main(args) == 0
    assert "5 of 5 points done" in caplog.text


# ------------------------------------------------- the shared vocabulary: --subset-seed, --bn


def _own_loss(path, subset_seed: int, split: str = "train") -> float:
    model = build_model("mlp-bn", (1, 8, 8), 10)
    model.load_state_dict(torch.load(path, weights_only=True)["model"])
    model.eval()
    x, y = fixed_subset(*load_dataset("digits").split(split), 150, subset_seed)
    return evaluate(model, x, y, make_loss("cross-entropy"))[0]


@pytest.mark.parametrize(("flags", "subset_seed"), [([], 0), (["--subset-seed", "3"], 3)])
def test_surface_centre_is_evaluated_on_the_subset_of_subset_seed(
    tmp_path, ckpts, flags, subset_seed
):
    out = tmp_path / "s.h5"
    argv = ["surface", str(ckpts["ep0"]), "--x=-1:1:3", "--seed", "5", "--out", str(out)]
    assert main([*argv, *SAMPLES, *flags, "--name", "s"]) == 0
    with h5py.File(out, "r") as f:
        g = f["surface/s"]
        assert json.loads(g.attrs["config"])["subset_seed"] == subset_seed
        assert g["train_loss"][1] == pytest.approx(_own_loss(ckpts["ep0"], subset_seed), rel=1e-6)


def test_surface_seed_moves_the_directions_but_not_the_examples(tmp_path, ckpts):
    out = tmp_path / "s.h5"
    for seed in ("1", "2"):
        argv = ["surface", str(ckpts["ep0"]), "--x=0:1:2", "--seed", seed, "--name", seed]
        assert main([*argv, "--out", str(out), *SAMPLES]) == 0
    with h5py.File(out, "r") as f:
        one, two = f["surface/1/train_loss"][()], f["surface/2/train_loss"][()]
    assert one[0] == two[0] and one[1] != two[1]  # same centre value, other direction


def test_interpolation_ends_are_evaluated_on_the_subset_of_subset_seed(tmp_path, ckpts):
    out = tmp_path / "i.h5"
    argv = ["interpolate", str(ckpts["ep0"]), str(ckpts["ep1"]), "--alpha=0:1:2"]
    flags = ["--bn", "interpolate", "--subset-seed", "4", "--out", str(out), "--name", "i"]
    assert main([*argv, *flags, *SAMPLES]) == 0
    with h5py.File(out, "r") as f:
        g = f["interpolation/i"]
        assert json.loads(g.attrs["config"])["subset_seed"] == 4
        assert g["train_loss"][0] == pytest.approx(_own_loss(ckpts["ep0"], 4), rel=1e-6)
        assert g["test_loss"][-1] == pytest.approx(_own_loss(ckpts["ep1"], 4, "test"), rel=1e-6)


@pytest.mark.parametrize("spelling", [["--bn", "recompute"], ["--bn-mode", "recalibrate"], []])
def test_interpolation_takes_the_old_and_new_spellings_of_recalibration(
    tmp_path, ckpts, capsys, spelling
):
    out = tmp_path / "i.h5"
    argv = ["interpolate", str(ckpts["ep0"]), str(ckpts["ep1"]), "--alpha=0:1:2", "--split"]
    assert main([*argv, "test", *spelling, "--out", str(out), "--name", "i", *SAMPLES]) == 0
    with h5py.File(out, "r") as f:
        assert f["interpolation/i"].attrs["bn_mode"] == "recalibrate"
    assert ("deprecated" in capsys.readouterr().err) == bool(spelling)


def test_surface_help_states_the_subset_rule(capsys):
    with pytest.raises(SystemExit):
        main(["surface", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "drawn by --subset-seed" in text and "--seed seeds only the directions" in text


# ------------------------------------------------------------------ the direction-kind registry


@pytest.fixture
def axis_kind():
    """A kind registered for one test: the x axis is the first weight matrix's own direction."""
    from landscape.surface import directions as dirs

    def make(request):
        d = {n: torch.zeros_like(w) for n, w in request.weights.items()}
        first = next(n for n, w in request.weights.items() if w.dim() == 2)
        d[first] = request.weights[first].clone()
        return dirs.Plane({"x": d}, ("scale of the first layer", "unused"), {"layer": first})

    kind = dirs.register_direction_kind(dirs.DirectionKind("layer-scale", "test kind", make))
    yield kind
    del dirs.DIRECTION_KINDS[kind.name]


def test_a_registered_direction_kind_is_a_choice_of_the_command_and_spans_the_slice(
    tmp_path, ckpts, axis_kind
):
    out = tmp_path / "s.h5"
    argv = ["surface", str(ckpts["ep0"]), "--directions", "layer-scale", "--x=0:2:3"]
    assert main([*argv, "--out", str(out), "--name", "k", *SAMPLES]) == 0
    with h5py.File(out, "r") as f:
        g = f["surface/k"]
        assert g.attrs["directions"] == "layer-scale" and g.attrs["norm"] == "filter"
        assert g["x"].attrs["label"] == "scale of the first layer"
        assert g["train_loss"][0] == pytest.approx(_own_metrics(ckpts["ep0"])[0], rel=1e-6)


def test_the_help_lists_every_registered_kind_and_others_are_refused(capsys, axis_kind):
    with pytest.raises(SystemExit):
        main(["surface", "--help"])
    assert "layer-scale" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["surface", "c.pt", "--directions", "frobnicate"])
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_registering_a_kind_twice_is_refused():
    from landscape.surface import directions as dirs

    with pytest.raises(ValueError, match="already registered"):
        dirs.register_direction_kind(dirs.DirectionKind("random", "again", lambda r: None))


def test_a_grid_beyond_the_available_memory_is_refused_before_any_work(
    tmp_path, ckpts, capsys, monkeypatch
):
    from landscape import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 << 30)
    out = tmp_path / "big.h5"
    argv = ["surface", str(ckpts["ep0"]), "--x=-1:1:100000", "--y=-1:1:100000", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and not out.exists()
    assert "a grid of 100,000 x 100,000 points needs 456.3 GiB" in err[0]
    assert "1.0 GiB of memory available" in err[0]
