"""`landscape hessian` end to end on tiny digits checkpoints."""

import json
import logging
import math

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.curvature import hessian_eigenvalues
from landscape.data import fixed_subset, load_dataset
from landscape.loading import checkpoint
from landscape.losses import make_loss
from landscape.models import build_model

FAST = ["--samples", "64", "--device", "cpu", "--tol", "1e-3"]
TRACE = ["--trace", "--trace-rel-stderr", "0.2"]


def _save(path, model, arch, epoch, phase, **config):
    checkpoint.save_checkpoint(
        path,
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": arch,
            "model": model.state_dict(),
            "epoch": epoch,
            "phase": phase,
            "config": {"dataset": "digits", **config},
            "history": [],
        },
    )
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-h", numbered=False)
    torch.manual_seed(0)
    a = _save(
        folder / "epoch-003-sgd.pt",
        build_model("mlp", (1, 8, 8), 10),
        "mlp",
        3,
        "sgd",
        weight_decay=5e-4,
    )
    b = _save(folder / "epoch-004-sam.pt", build_model("cnn-bn", (1, 8, 8), 10), "cnn-bn", 4, "sam")
    return a, b


def test_writes_the_hessian_layout_with_provenance_and_prints_a_table(ckpts, tmp_path, capsys):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpts[0]), "--top-k", "3", *FAST, *TRACE, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "epoch-003-sgd" in stdout and "lambda3" in stdout and str(out) in stdout
    assert "+-" in stdout
    with h5py.File(out) as f:
        group = f["hessian/run-h_epoch-003-sgd"]
        eigenvalues = group["eigenvalues"][()]
        assert eigenvalues.shape == (3,) and np.all(np.diff(eigenvalues) <= 0)
        # the default certificate without --eigenvectors: the eigenvalue error bound
        assert np.all(group["error_bounds"][()] <= 1e-3 * np.abs(eigenvalues))
        assert np.all(group["residuals"][()] > 0)
        assert math.isfinite(group["trace"][()]) and group["trace_stderr"][()] > 0
        assert group["hvp_count"][()] > 0
        attrs = group.attrs
        assert attrs["epoch"] == 3 and attrs["phase"] == "sgd" and attrs["samples"] == 64
        assert (
            attrs["bn_mode"] == "eval" and attrs["dtype"] == "float32" and attrs["split"] == "train"
        )
        config = json.loads(attrs["config"])
        assert config["hvp_engine"] in ("cached", "func") and config["weight_decay_term"] == 0.0
        assert config["loss"] == "cross-entropy" and config["label_smoothing"] == 0.0


@pytest.mark.parametrize(
    "seeds, subset_seed",
    [(["--subset-seed", "3"], 3), (["--seed", "3"], 0)],
    ids=["subset-seed-draws-the-examples", "seed-does-not"],
)
def test_eigenvalues_match_the_python_api_on_the_same_subset(ckpts, tmp_path, seeds, subset_seed):
    out = tmp_path / "h.h5"
    argv = [
        "hessian",
        str(ckpts[0]),
        "--top-k",
        "2",
        "--no-trace",
        "--samples",
        "64",
        "--tol",
        "1e-8",
        "--dtype",
        "float64",
        "--device",
        "cpu",
        *seeds,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    model = build_model("mlp", (1, 8, 8), 10).double()
    model.load_state_dict(torch.load(ckpts[0], weights_only=True)["model"])
    x, y = fixed_subset(*load_dataset("digits").split("train"), 64, subset_seed)
    expected = hessian_eigenvalues(
        model.eval(), make_loss(), x.double(), y, k=2, tol=1e-8
    ).eigenvalues
    with h5py.File(out) as f:
        np.testing.assert_allclose(
            f["hessian/run-h_epoch-003-sgd/eigenvalues"][()], expected, rtol=1e-6
        )
        assert math.isnan(f["hessian/run-h_epoch-003-sgd/trace"][()])


def test_several_checkpoints_give_one_group_each_and_a_rerun_replaces_only_its_own(ckpts, tmp_path):
    out = tmp_path / "h.h5"
    assert main(["hessian", *map(str, ckpts), "--top-k", "1", *FAST, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert set(f["hessian"]) == {"run-h_epoch-003-sgd", "run-h_epoch-004-sam"}
        kept = f["hessian/run-h_epoch-004-sam/eigenvalues"][()]
    assert main(["hessian", str(ckpts[0]), "--top-k", "2", *FAST, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert f["hessian/run-h_epoch-003-sgd/eigenvalues"].shape == (2,)
        np.testing.assert_array_equal(f["hessian/run-h_epoch-004-sam/eigenvalues"][()], kept)


def test_density_bottom_k_and_eigenvectors_on_request(ckpts, tmp_path):
    out = tmp_path / "h.h5"
    argv = [
        "hessian",
        str(ckpts[1]),
        "--top-k",
        "2",
        "--bottom-k",
        "1",
        "--eigenvectors",
        "--density",
        "--density-runs",
        "2",
        "--density-steps",
        "12",
        "--no-trace",
        "--bn-mode",
        "train",
        *FAST,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    model = build_model("cnn-bn", (1, 8, 8), 10)
    with h5py.File(out) as f:
        group = f["hessian/run-h_epoch-004-sam"]
        assert group.attrs["bn_mode"] == "train"
        assert group["bottom_eigenvalues"].shape == (1,)
        assert group["bottom_eigenvalues"][0] <= group["eigenvalues"][1]
        vectors = group["eigenvectors"]
        for name, parameter in model.named_parameters():
            assert vectors[name].shape == (2, *parameter.shape)
        norm = math.sqrt(sum(float((vectors[n][0] ** 2).sum()) for n in vectors))
        assert norm == pytest.approx(1.0, rel=1e-5)
        density = group["density"]
        assert density["nodes"].shape == density["weights"].shape == (2, 12)
        assert np.trapezoid(density["values"][()], density["grid"][()]) == pytest.approx(
            1, abs=1e-4
        )


def test_density_lockstep_gives_the_same_density_and_is_recorded(ckpts, tmp_path):
    """The runs advanced together: the same start vectors, so the same Gauss rules to rounding
    (float64), for the whole model and for each block; the file says which way it ran."""
    found = {}
    for lockstep in ("--no-density-lockstep", "--density-lockstep"):
        out = tmp_path / f"{lockstep}.h5"
        argv = ["hessian", str(ckpts[0]), "--density", "--density-runs", "3", "--density-steps"]
        argv += ["12", lockstep, "--blocks", "type", "--dtype", "float64", *FAST]
        assert main([*argv, "--out", str(out)]) == 0
        with h5py.File(out) as f:
            group = f["hessian/run-h_epoch-003-sgd"]
            config = json.loads(group.attrs["config"])
            assert config["density_lockstep"] == (lockstep == "--density-lockstep")
            found[lockstep] = {}
            for where in ("density", "blocks/linear/density"):
                assert bool(group[where].attrs["lockstep"]) == config["density_lockstep"]
                found[lockstep][where] = {k: group[where][k][()] for k in ("nodes", "weights")}
    for where, one_by_one in found["--no-density-lockstep"].items():
        for key, values in one_by_one.items():
            together = found["--density-lockstep"][where][key]
            np.testing.assert_allclose(together, values, rtol=1e-8, atol=1e-12)


def test_density_lockstep_is_read_from_a_config_file(ckpts, tmp_path):
    config = tmp_path / "h.toml"
    config.write_text("density = true\ndensity-steps = 6\n[hessian]\ndensity-lockstep = true\n")
    out = tmp_path / "h.h5"
    argv = ["hessian", str(ckpts[0]), "--config", str(config), *FAST, "--out", str(out)]
    assert main(argv) == 0
    with h5py.File(out) as f:
        assert bool(f["hessian/run-h_epoch-003-sgd/density"].attrs["lockstep"])


def test_the_weight_decay_term_shifts_every_eigenvalue_by_the_configured_decay(ckpts, tmp_path):
    out = tmp_path / "h.h5"
    base = [
        "hessian",
        str(ckpts[0]),
        "--top-k",
        "2",
        "--no-trace",
        "--samples",
        "32",
        "--tol",
        "1e-9",
        "--dtype",
        "float64",
        "--device",
        "cpu",
    ]
    assert main([*base, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        plain = f["hessian/run-h_epoch-003-sgd/eigenvalues"][()]
    assert main([*base, "--weight-decay-term", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        shifted = f["hessian/run-h_epoch-003-sgd/eigenvalues"][()]
        assert (
            json.loads(f["hessian/run-h_epoch-003-sgd"].attrs["config"])["weight_decay_term"]
            == 5e-4
        )
    np.testing.assert_allclose(shifted - plain, 5e-4, atol=1e-9)


def test_top_k_beyond_the_parameter_count_is_a_user_error_and_writes_nothing(
    ckpts, tmp_path, capsys
):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpts[0]), "--top-k", "9000", *FAST, "--out", str(out)]) == 1
    assert "--top-k 9000 is larger than the 8970 parameters" in capsys.readouterr().err
    assert not out.exists()


def test_nan_weights_are_a_user_error_and_write_nothing(tmp_path, capsys):
    model = build_model("mlp", (1, 8, 8), 10)
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    path = _save(tmp_path / "nan.pt", model, "mlp", 1, "sgd")
    out = tmp_path / "h.h5"
    assert main(["hessian", str(path), *FAST, "--out", str(out)]) == 1
    assert "landscape: error:" in capsys.readouterr().err
    assert not out.exists()


def test_an_overflowing_product_names_the_dtype_flag_and_writes_nothing(tmp_path, capsys):
    model = build_model("mlp", (1, 8, 8), 10)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e19)  # finite weights whose products overflow float32
    path = _save(tmp_path / "huge.pt", model, "mlp", 1, "sgd")
    out = tmp_path / "h.h5"
    assert main(["hessian", str(path), *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "landscape: error:" in err and "not finite" in err and "--dtype float64" in err
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--top-k", "0"], ["--samples", "0"], ["--tol", "0"]])
def test_bad_flags_are_usage_errors(ckpts, tmp_path, flags):
    with pytest.raises(SystemExit) as exc:
        main(["hessian", str(ckpts[0]), *flags, "--out", str(tmp_path / "h.h5")])
    assert exc.value.code == 2
    assert not (tmp_path / "h.h5").exists()


def test_the_gap_rule_stores_error_bounds_within_the_tolerance(ckpts, tmp_path, capsys):
    out = tmp_path / "h.h5"
    argv = [
        "hessian",
        str(ckpts[0]),
        "--top-k",
        "2",
        "--no-trace",
        "--samples",
        "64",
        "--stop",
        "gap",
        "--tol",
        "1e-6",
        "--dtype",
        "float64",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.endswith(f"wrote {out}\n")
    with h5py.File(out) as f:
        group = f["hessian/run-h_epoch-003-sgd"]
        eigenvalues, bounds = group["eigenvalues"][()], group["error_bounds"][()]
        assert group["eigenvalues"].attrs["converged"]
        assert np.all(bounds <= 1e-6 * np.abs(eigenvalues) + 1e-10 * np.abs(eigenvalues).max())
        assert json.loads(group.attrs["config"])["stop"] == "gap"


def test_a_bare_run_computes_the_largest_eigenvalue_only(ckpts, tmp_path):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpts[0]), *FAST, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        group = f["hessian/run-h_epoch-003-sgd"]
        assert group["eigenvalues"].shape == (1,)
        assert math.isnan(group["trace"][()]) and "density" not in group
        assert "bottom_eigenvalues" not in group
        assert group["hvp_count"][()] == group["eigenvalues"].attrs["hvp_count"]


@pytest.mark.parametrize(
    "flags, present, absent",
    [
        (["--top-k", "2"], {"eigenvalues"}, {"bottom_eigenvalues", "density"}),
        (["--trace", "--trace-rel-stderr", "0.2"], set(), {"eigenvalues", "density"}),
        (["--bottom-k", "1"], {"bottom_eigenvalues"}, {"eigenvalues", "density"}),
        (
            ["--density", "--density-steps", "8", "--density-runs", "1"],
            {"density"},
            {"eigenvalues", "bottom_eigenvalues"},
        ),
    ],
)
def test_naming_a_quantity_computes_only_that(ckpts, tmp_path, flags, present, absent):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpts[0]), *flags, *FAST, "--out", str(out)]) == 0
    with h5py.File(out) as f:
        group = f["hessian/run-h_epoch-003-sgd"]
        assert present <= set(group) and not absent & set(group)
        assert math.isfinite(group["trace"][()]) == ("--trace" in flags)


@pytest.mark.parametrize(
    "flags",
    [
        ["--trace-rel-stderr", "0.1"],
        ["--density-runs", "2"],
        ["--density-lockstep"],
        ["--top-k", "1", "--trace-method", "hutchinson"],
    ],
)
def test_an_option_of_a_quantity_not_asked_for_is_an_error(ckpts, tmp_path, capsys, flags):
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpts[0]), *flags, *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("landscape: error: --") and "which is not computed" in err
    assert not out.exists()


def test_progress_names_each_phase_with_its_estimate_against_the_target(ckpts, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="landscape.progress")
    out = tmp_path / "h.h5"
    argv = [
        "hessian",
        str(ckpts[0]),
        "--top-k",
        "2",
        *TRACE,
        "--density",
        "--density-runs",
        "2",
        "--density-steps",
        "6",
        *FAST,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "landscape.progress"]
    eig = next(line for line in lines if line.startswith("top-2 eigenvalues: "))
    assert (
        "products" in eig
        and "lambda1 " in eig
        and "rel. eigenvalue error bound" in eig
        and "(target 0.001)" in eig
    )
    trace = next(line for line in lines if line.startswith("trace (krylov-hutch++): "))
    assert "rel. stderr" in trace and "(target 0.2)" in trace
    assert any(line.startswith("density: 12 products") and "run 2/2" in line for line in lines)


def test_loss_mse_gives_the_eigenvalue_of_torch_mse_loss_and_half_sse_c_over_2_times_it(
    ckpts, tmp_path, capsys
):
    out = tmp_path / "h.h5"
    base = [
        "hessian",
        str(ckpts[0]),
        "--samples",
        "32",
        "--tol",
        "1e-9",
        "--dtype",
        "float64",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    model = build_model("mlp", (1, 8, 8), 10).double()
    model.load_state_dict(torch.load(ckpts[0], weights_only=True)["model"])
    x, y = fixed_subset(*load_dataset("digits").split("train"), 32, 0)

    def users_mse(outputs, labels):
        return torch.nn.MSELoss()(outputs, torch.nn.functional.one_hot(labels, 10).to(outputs))

    expected = hessian_eigenvalues(
        model.eval(), users_mse, x.double(), y, k=1, tol=1e-10
    ).eigenvalues
    values = {}
    for loss in ("mse", "half-sse"):
        assert main([*base, "--loss", loss]) == 0
        with h5py.File(out) as f:
            values[loss] = f["hessian/run-h_epoch-003-sgd/eigenvalues"][0]
            assert json.loads(f["hessian/run-h_epoch-003-sgd"].attrs["config"])["loss"] == loss
    assert values["mse"] == pytest.approx(expected[0], rel=1e-7)
    assert values["half-sse"] == pytest.approx(5 * values["mse"], rel=1e-7)  # C/2 for 10 outputs


def test_the_loss_help_states_both_squared_error_formulas(capsys):
    with pytest.raises(SystemExit):
        main(["hessian", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "mse = torch.nn.MSELoss(): (1/(N C)) sum_n ||f(x_n) - y_n||^2" in text
    assert "half-sse = (1/N) sum_n 0.5 ||f(x_n) - y_n||^2" in text
