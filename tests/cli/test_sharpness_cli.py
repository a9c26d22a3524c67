"""`landscape sharpness` and `landscape escape` end to end on a tiny digits checkpoint."""

import math

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.loading import checkpoint
from landscape.models import build_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    path = tmp_path_factory.mktemp("run-s", numbered=False) / "epoch-003-sgd.pt"
    checkpoint.save_checkpoint(
        path,
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": "mlp",
            "model": model.state_dict(),
            "epoch": 3,
            "phase": "sgd",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )
    return path


def test_sharpness_writes_one_dataset_per_measure_with_its_parameters(ckpt, tmp_path, capsys):
    out = tmp_path / "s.h5"
    code = main(
        [
            "sharpness",
            str(ckpt),
            "--measure",
            "worst-case",
            "average-case",
            "gradient-norm",
            "fisher-rao-norm",
            "--samples",
            "64",
            "--steps",
            "3",
            "--draws",
            "4",
            "--m",
            "32",
            "--rho",
            "0.1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "worst_case" in stdout and str(out) in stdout
    with h5py.File(out) as f:
        group = f["sharpness/run-s_epoch-003-sgd"]
        assert set(group) == {"worst_case", "average_case", "gradient_norm", "fisher_rao_norm"}
        assert group.attrs["samples"] == 64 and group.attrs["epoch"] == 3
        assert group["worst_case"].attrs["rho"] == 0.1 and group["worst_case"].attrs["m"] == 32
        assert group["worst_case"][()] > 0
        assert math.isfinite(group["average_case"].attrs["stderr"])


def test_a_second_run_adds_measures_to_the_same_group(ckpt, tmp_path):
    out = tmp_path / "s.h5"
    base = [str(ckpt), "--samples", "32", "--out", str(out)]
    assert main(["sharpness", *base, "--measure", "gradient-norm"]) == 0
    assert main(["sharpness", *base, "--measure", "fisher-rao-norm"]) == 0
    with h5py.File(out) as f:
        assert set(f["sharpness/run-s_epoch-003-sgd"]) == {"gradient_norm", "fisher_rao_norm"}


def test_the_curvature_measures_of_the_gauss_newton_matrix_record_it(ckpt, tmp_path):
    from landscape.curvature import hessian_eigenvalues
    from landscape.data import fixed_subset, load_dataset
    from landscape.losses import make_loss

    out = tmp_path / "s.h5"
    argv = ["sharpness", str(ckpt), "--measure", "top-eigenvalue", "trace", "--curvature", "ggn"]
    fast = ["--samples", "64", "--tol", "1e-8", "--trace-rel-stderr", "0.2", "--dtype", "float64"]
    assert main([*argv, *fast, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        group = f["sharpness/run-s_epoch-003-sgd"]
        assert group["top_eigenvalue_ggn"].attrs["curvature"] == "ggn"
        assert group["trace_ggn"].attrs["curvature"] == "ggn"
        recorded = group["top_eigenvalue_ggn"][()]
    model = build_model("mlp", (1, 8, 8), 10).double()
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    x, y = fixed_subset(*load_dataset("digits").split("train"), 64, 0)
    ggn = hessian_eigenvalues(
        model.eval(), make_loss(), x.double(), y, k=1, tol=1e-10, curvature="ggn"
    )
    assert recorded == pytest.approx(ggn.eigenvalues[0], rel=1e-6)


def test_a_gauss_newton_measure_is_kept_beside_the_hessian_one(ckpt, tmp_path):
    out = tmp_path / "s.h5"
    argv = ["sharpness", str(ckpt), "--measure", "top-eigenvalue", "--samples", "64"]
    assert main([*argv, "--out", str(out)]) == 0
    assert main([*argv, "--curvature", "ggn", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        group = f["sharpness/run-s_epoch-003-sgd"]
        assert group["top_eigenvalue"].attrs["curvature"] == "hessian"
        assert group["top_eigenvalue_ggn"].attrs["curvature"] == "ggn"


def test_fisher_samples_without_the_monte_carlo_fisher_is_an_error(ckpt, tmp_path, capsys):
    out = tmp_path / "s.h5"
    argv = ["sharpness", str(ckpt), "--measure", "trace", "--fisher-samples", "2"]
    assert main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "landscape: error: --fisher-samples is an option of --curvature fisher-mc"
    assert not out.exists()


def test_sharpness_refuses_a_bad_output_before_loading(ckpt, tmp_path, capsys):
    bad = tmp_path / "not-hdf5.h5"
    bad.write_text("hello")
    assert main(["sharpness", str(ckpt), "--out", str(bad)]) == 1
    assert "not an HDF5 file" in capsys.readouterr().err
    assert bad.read_text() == "hello"


def test_escape_writes_the_escape_layout(ckpt, tmp_path, capsys):
    out = tmp_path / "e.h5"
    code = main(
        [
            "escape",
            str(ckpt),
            "--rho",
            "0.5",
            "--lr",
            "0.5",
            "--steps",
            "6",
            "--eig-every",
            "3",
            "--samples",
            "64",
            "--out",
            str(out),
            "--name",
            "run",
        ]
    )
    assert code == 0
    assert "growth rate" in capsys.readouterr().out
    with h5py.File(out) as f:
        g = f["escape/run"]
        assert list(g["step"][()]) == list(range(7))
        assert g["distance"][0] == 0 and np.all(g["distance"][1:] > 0)
        assert np.isnan(g["eigenvalue"][()]).tolist() == [
            False,
            True,
            True,
            False,
            True,
            True,
            False,
        ]
        assert g.attrs["rho"] == 0.5 and g.attrs["lr"] == 0.5 and not g.attrs["unnormalized"]
        assert "growth_rate" in g.attrs and g.attrs["checkpoint"] == str(ckpt)


def test_escape_unnormalized_flag_is_recorded(ckpt, tmp_path):
    out = tmp_path / "e.h5"
    assert (
        main(
            [
                "escape",
                str(ckpt),
                "--rho",
                "0.05",
                "--lr",
                "0.1",
                "--steps",
                "2",
                "--unnormalized",
                "--samples",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with h5py.File(out) as f:
        (name,) = list(f["escape"])
        assert f["escape"][name].attrs["unnormalized"]


def test_escape_reports_a_divergence_and_stores_where_it_happened(ckpt, tmp_path, capsys):
    out = tmp_path / "e.h5"
    assert (
        main(
            [
                "escape",
                str(ckpt),
                "--rho",
                "0.05",
                "--lr",
                "50",
                "--steps",
                "20",
                "--samples",
                "32",
                "--out",
                str(out),
                "--name",
                "run",
            ]
        )
        == 0
    )
    assert "DIVERGED at step" in capsys.readouterr().out
    with h5py.File(out) as f:
        g = f["escape/run"]
        assert 0 < g.attrs["diverged_at"] <= 20 and math.isnan(g.attrs["growth_rate"])


def test_a_finite_escape_stores_diverged_at_as_nan(ckpt, tmp_path):
    out = tmp_path / "e.h5"
    assert (
        main(
            [
                "escape",
                str(ckpt),
                "--rho",
                "0.05",
                "--lr",
                "0.01",
                "--steps",
                "3",
                "--samples",
                "32",
                "--out",
                str(out),
                "--name",
                "run",
            ]
        )
        == 0
    )
    with h5py.File(out) as f:
        assert math.isnan(f["escape/run"].attrs["diverged_at"])


def test_several_rho_give_one_worst_case_dataset_per_radius(ckpt, tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert (
        main(
            [
                "sharpness",
                str(ckpt),
                "--measure",
                "worst-case",
                "--rho",
                "0.02",
                "0.05",
                "0.1",
                "--samples",
                "32",
                "--steps",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    stdout = capsys.readouterr().out
    with h5py.File(out) as f:
        group = f["sharpness/run-s_epoch-003-sgd"]
        assert set(group) == {"worst_case_rho0.02", "worst_case_rho0.05", "worst_case_rho0.1"}
        values = [group[f"worst_case_rho{r}"][()] for r in ("0.02", "0.05", "0.1")]
        assert [group[f"worst_case_rho{r}"].attrs["rho"] for r in ("0.02", "0.05", "0.1")] == [
            0.02,
            0.05,
            0.1,
        ]
    assert 0 < values[0] < values[1] < values[2]
    assert "worst_case_rho0.1" in stdout
