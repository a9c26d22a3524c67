"""landscape info: what a checkpoint or result file holds, on stdout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from landscape import cli, store
from landscape.loading.checkpoint import FORMAT, save_checkpoint
from landscape.models import build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("cnn-bn", (1, 8, 8), 10)


def parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def info(capsys, *argv):
    code = cli.main(["info", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_landscape_checkpoint_is_described(tmp_path, model, capsys):
    save_checkpoint(
        tmp_path / "epoch-007-sam.pt",
        {
            "format": FORMAT,
            "version": 1,
            "arch": "cnn-bn",
            "model": model.state_dict(),
            "epoch": 7,
            "phase": "sam",
            "config": {"dataset": "digits"},
            "history": [{}] * 7,
        },
    )
    code, out, _ = info(capsys, tmp_path / "epoch-007-sam.pt")
    assert code == 0
    assert "landscape (torch.save zip archive)" in out
    assert "cnn-bn" in out and "7 / sam" in out and "digits" in out
    assert f"{parameters(model):,}" in out


def test_dataparallel_state_dict_shows_the_stripped_prefix(tmp_path, model, capsys):
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "dp.pt")
    code, out, _ = info(capsys, tmp_path / "dp.pt")
    assert code == 0
    assert "state_dict" in out and "prefixes stripped: module." in out and "give --arch" in out


def test_safetensors_file_is_described(tmp_path, model, capsys):
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(tmp_path / "w.safetensors"), metadata={"arch": "cnn-bn"})
    code, out, _ = info(capsys, tmp_path / "w.safetensors")
    assert code == 0 and "safetensors" in out and "cnn-bn" in out


def test_with_arch_the_model_is_loaded_as_analyses_load_it(tmp_path, model, capsys):
    torch.save(
        {"state_dict": {"model." + k: v for k, v in model.state_dict().items()}, "epoch": 3},
        tmp_path / "lightning.ckpt",
    )
    code, out, _ = info(
        capsys, tmp_path / "lightning.ckpt", "--arch", "cnn-bn", "--dataset", "digits"
    )
    assert code == 0
    assert (
        "weights under:     state_dict" in out
        and "3 / -" in out
        and "shared prefix:     model." in out
    )
    assert "model:             cnn-bn" in out and "stripped prefix 'model.'" in out


def test_resnet18_dataparallel_example_from_the_readme(tmp_path, capsys):
    import torchvision

    net = torchvision.models.resnet18(num_classes=10)
    torch.save(torch.nn.DataParallel(net).state_dict(), tmp_path / "resnet18_dp.pt")
    (tmp_path / "data.py").write_text(
        textwrap.dedent(
            """
        import torch

        def cifar_like():
            return torch.randn(4, 3, 32, 32), torch.arange(4)
        """
        )
    )
    code, out, _ = info(
        capsys,
        tmp_path / "resnet18_dp.pt",
        "--arch",
        "torchvision:resnet18",
        "--num-classes",
        "10",
        "--data",
        f"{tmp_path / 'data.py'}:cifar_like",
    )
    assert code == 0
    assert "prefixes stripped: module." in out
    assert f"torchvision:resnet18, {parameters(net):,} parameters" in out


def test_result_file_lists_groups_values_and_provenance(tmp_path, capsys):
    with store.transaction(tmp_path / "r.h5", command=["landscape", "hessian"]) as f:
        group = store.replace_group(f, "hessian/epoch-010-sgd")
        store.write_dataset(group, "eigenvalues", [3.0, 2.0, 1.0])
        store.set_provenance(
            group,
            {
                "checkpoint": "ckpt/epoch-010-sgd.pt",
                "checkpoint_sha256": "ab",
                "arch": "resnet20",
                "epoch": 10,
                "phase": "sgd",
                "split": "train",
                "samples": 512,
                "bn_mode": "eval",
                "dtype": "float64",
                "seed": 0,
                "seconds": 1.5,
                "config": {"k": 3},
            },
        )
    code, out, _ = info(capsys, tmp_path / "r.h5")
    assert code == 0
    assert "hessian/epoch-010-sgd" in out and "top eigenvalues: [3, 2, 1]" in out
    assert "arch=resnet20" in out and "samples=512" in out


def test_json_output_is_one_object_per_file(tmp_path, model, capsys):
    torch.save(model.state_dict(), tmp_path / "a.pt")
    code, out, _ = info(capsys, tmp_path / "a.pt", "--json")
    described = json.loads(out)
    assert (
        code == 0
        and described["format"] == "state_dict"
        and described["tensors"] == len(model.state_dict())
    )


def test_a_bad_file_among_good_ones_prints_nothing_but_the_error(tmp_path, model, capsys):
    torch.save(model.state_dict(), tmp_path / "good.pt")
    (tmp_path / "bad.pt").write_bytes(b"")
    code, out, err = info(capsys, tmp_path / "good.pt", tmp_path / "bad.pt")
    assert code == 1 and out == ""
    assert err.strip().startswith("landscape: error:") and "is empty" in err


def test_model_and_data_flags_become_sources():
    from landscape.cli.common import data_source_from_args, model_source_from_args

    parser, _ = cli.build_parser()
    args = parser.parse_args(
        [
            "hessian",
            "x.pt",
            "--arch",
            "cnn",
            "--arch-kwargs",
            '{"width": 8}',
            "--num-classes",
            "3",
            "--trust-checkpoint",
            "--non-strict",
            "--ema",
            "--dataset",
            "cifar10",
            "--data-dir",
            "d",
            "--mean",
            "0.5,0.4,0.3",
            "--std",
            "0.2",
            "--loss",
            "mse",
        ]
    )
    model = model_source_from_args(args)
    data = data_source_from_args(args)
    assert (model.arch, model.arch_kwargs, model.num_classes) == ("cnn", {"width": 8}, 3)
    assert model.trust and not model.strict and model.ema
    assert (data.dataset, data.data_dir, data.mean, data.std, data.loss) == (
        "cifar10",
        "d",
        (0.5, 0.4, 0.3),
        (0.2,),
        "mse",
    )


def _result_file(path):
    """One group of every kind, with known numbers, as the commands write them."""
    prov = {
        "checkpoint": "checkpoints/run/epoch-010-sgd.pt",
        "checkpoint_sha256": "ab",
        "arch": "cnn-bn",
        "epoch": 10,
        "phase": "sgd",
        "split": "train",
        "samples": 512,
        "bn_mode": "eval",
        "dtype": "float32",
        "seed": 0,
        "seconds": 1.23456789,
        "config": {},
    }
    with store.transaction(path, command=["landscape", "test"]) as f:
        h = store.replace_group(f, "hessian/run_epoch-010-sgd")
        store.set_provenance(h, prov)
        store.write_dataset(h, "eigenvalues", [16.123456, 14.4])
        store.write_dataset(h, "residuals", [1.2345e-4, 2e-4])
        store.write_dataset(h, "trace", 85.69876)
        store.write_dataset(h, "trace_stderr", 0.3123)
        s = store.replace_group(f, "surface/run_epoch-010-sgd-random-2d")
        store.set_provenance(s, prov)
        store.set_attrs(s, directions="random")
        store.write_dataset(s, "x", np.linspace(-1, 1, 3))
        store.write_dataset(s, "y", np.linspace(-0.5, 0.5, 2))
        store.write_dataset(s, "train_loss", [[3.0, 2.0], [0.0123456, np.nan], [4.5, 5.0]])
        store.write_dataset(s, "done", [[True, True], [True, False], [True, True]])
        i = store.replace_group(f, "interpolation/a-to-b")
        store.set_provenance(i, prov)
        store.write_dataset(i, "alpha", np.linspace(0, 1, 5))
        store.write_dataset(i, "train_loss", [0.1, 0.2, 0.3, 0.2, 0.1])
        store.set_attrs(i, barrier_train_loss_frankle=0.2000001)
        p = store.replace_group(f, "sharpness/run_epoch-010-sgd")
        store.set_provenance(p, prov)
        store.write_dataset(p, "worst_case", 0.048712345, stderr=0.0)
        store.write_dataset(p, "average_case", 0.0123, stderr=0.00045)
        e = store.replace_group(f, "escape/run_epoch-010-sgd")
        store.set_provenance(e, prov)
        store.write_dataset(e, "step", np.arange(4))
        store.write_dataset(e, "distance", [0.0, 0.1, 0.2, 0.4])
        store.set_attrs(e, growth_rate=0.0912345)
    return path


def test_result_file_shows_the_numbers_rounded(tmp_path, capsys):
    code, out, _ = info(capsys, _result_file(tmp_path / "r.h5"))
    assert code == 0
    for expected in (
        "top eigenvalues: [16.12, 14.4]",
        "residuals:     [0.0001234, 0.0002]",
        "trace: 85.7 ± 0.3123",
        "x: -1 to 1, 3 points",
        "y: -0.5 to 0.5, 2 points",
        "done: 5/6",
        "train_loss: min 0.01235, max 5",
        "alpha: 0 to 1, 5 points",
        "barriers: train_loss_frankle 0.2",
        "worst_case: 0.04871",
        "average_case: 0.0123 ± 0.00045",
        "growth_rate: 0.09123",
        "seconds=1.235",
    ):
        assert expected in out, expected


def test_result_file_as_json_keeps_full_precision_and_is_valid_json(tmp_path, capsys):
    code, out, _ = info(capsys, _result_file(tmp_path / "r.h5"), "--json")
    described = json.loads(out)  # strict JSON: NaN would not parse in most readers
    groups = {r["group"]: r for r in described["results"]}
    assert groups["hessian/run_epoch-010-sgd"]["values"]["eigenvalues"] == [16.123456, 14.4]
    assert groups["surface/run_epoch-010-sgd-random-2d"]["values"]["train_loss"]["min"] == 0.0123456
    assert "NaN" not in out


def test_a_reader_that_stops_early_gets_no_broken_pipe_error(tmp_path):
    """``landscape info r.h5 | head -1``: the reader goes away before everything is written."""
    path = _result_file(tmp_path / "r.h5")
    proc = subprocess.Popen(
        [sys.executable, "-m", "landscape", "info", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    proc.stdout.close()  # no reader at all: the first write already fails
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and err == ""


# ------------------------------------------- the options that made a result, as the flags


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """Two checkpoints of one digits run (so that the second Lanczos run starts warm)."""
    folder = tmp_path_factory.mktemp("run-i", numbered=False)
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        save_checkpoint(
            folder / f"epoch-00{epoch}-sgd.pt",
            {
                "format": FORMAT,
                "version": 1,
                "arch": "mlp",
                "model": build_model("mlp", (1, 8, 8), 10).state_dict(),
                "epoch": epoch,
                "phase": "sgd",
                "config": {"dataset": "digits"},
                "history": [],
            },
        )
    return folder


SMALL = ["--samples", "48", "--subset-seed", "3", "--device", "cpu"]
# kind: the command's arguments after the checkpoint(s), and what `info` shows of them
ANALYSES = {
    "hessian": (
        ["--curvature", "fisher-mc", "--fisher-samples", "2", "--top-k", "1", "--tol", "0.01"]
        + ["--trace", "--trace-rel-stderr", "0.3", "--trace-method", "hutchinson"]
        + ["--density", "--density-runs", "2", "--density-steps", "5", "--density-lockstep"]
        + ["--blocks", "type", "--loss", "mse", "--weight-decay-term", "0.5"],
        [
            "--curvature fisher-mc --fisher-samples 2",
            "--loss mse --label-smoothing 0.0 --weight-decay-term 0.5 --bn eval --batch-size ",
            "--dataset digits --split train --samples 48 --subset-seed 3 --dtype float32 --seed 0",
            "--seed 0 --top-k 1 --tol 0.01 --stop gap --warm-start",
            "--trace --trace-method hutchinson --trace-rel-stderr 0.3 --trace-max-hvps 2000",
            "--density --density-runs 2 --density-steps 5 --density-lockstep",
            "--blocks type",
            "top eigenvalues: ",
            "(warm start)",
            "spectral density: 2 runs x 5 steps",
            "block linear: dim ",
        ],
    ),
    "surface": (
        ["--directions", "hessian", "--curvature", "fisher-mc", "--fisher-samples", "2"]
        + ["--x=-1:1:3", "--y=-0.5:0.5:3", "--norm", "filter"],
        [
            "--directions hessian --norm filter --ignore biasbn --bn eval --x=-1:1:3",
            "--y=-0.5:0.5:3 --loss cross-entropy --dataset digits --split train --samples 48",
            "--subset-seed 3 --dtype float32 --seed 0",
            "--curvature fisher-mc --fisher-samples 2",
            "eigenvalues: [",
            "eigenvector_tol: 0.0001",
            "eigenvector_split: train",
        ],
    ),
    "sharpness": (
        ["--measure", "worst-case", "adaptive-worst-case", "top-eigenvalue", "trace"]
        + ["--rho", "0.02", "--adaptive-rho", "0.3", "--steps", "2", "--m", "16", "--tol"]
        + ["0.01", "--trace-rel-stderr", "0.3", "--curvature", "ggn", "--loss", "mse"],
        [
            "options: --loss mse --bn eval --dataset digits --split train --samples 48",
            "--subset-seed 3 --dtype float32 --seed 0",
            "(--rho 0.02 --steps 2 --m 16)",
            "(--adaptive-rho 0.3 --steps 2 --m 16)",
            "top_eigenvalue_ggn: ",
            "(--curvature ggn --tol 0.01)",
            "(--curvature ggn --trace-rel-stderr 0.3)",
        ],
    ),
}


@pytest.fixture(scope="module", params=list(ANALYSES))
def analysed(request, run_folder, tmp_path_factory):
    """(kind, result file written by the command, what info shows of its options)."""
    kind = request.param
    arguments, shown = ANALYSES[kind]
    checkpoints = sorted(map(str, run_folder.glob("*.pt")))
    out = tmp_path_factory.mktemp(kind) / "r.h5"
    if kind == "surface":
        checkpoints = checkpoints[-1:]
    assert cli.main([kind, *checkpoints, *arguments, *SMALL, "-q", "--out", str(out)]) == 0
    return kind, out, shown


@pytest.mark.usefixtures("one_thread")
def test_a_result_shows_the_options_that_made_it_as_flags(analysed, capsys):
    kind, out, shown = analysed
    capsys.readouterr()
    code, text, _ = info(capsys, out)
    assert code == 0
    flat = " ".join(line.strip() for line in text.splitlines())  # options wrap over lines
    for expected in shown:
        assert expected in flat, expected
    assert max(len(line) for line in text.splitlines() if "options:" in line) <= 100


@pytest.mark.usefixtures("one_thread")
def test_json_gives_the_options_by_flag_name(analysed, capsys):
    kind, out, _ = analysed
    capsys.readouterr()
    code, text, _ = info(capsys, out, "--json")
    results = json.loads(text)["results"]
    options = [r["options"] for r in results]
    assert code == 0 and all(o["subset-seed"] == 3 for o in options)
    if kind == "hessian":
        assert all(o["density-lockstep"] is True and o["curvature"] == "fisher-mc" for o in options)
    if kind == "sharpness":
        measures = results[0]["values"]
        assert measures["worst_case"]["options"] == {"rho": 0.02, "steps": 2, "m": 16}


def test_a_group_written_before_digests_is_shown_as_unverified(tmp_path, capsys):
    path = _result_file(tmp_path / "r.h5")
    import h5py

    with h5py.File(path, "r+") as f:  # what an older landscape wrote
        del f["hessian/run_epoch-010-sgd"].attrs["digest"]
    code, out, _ = info(capsys, path)
    sections = re.split(r"\n  (?=\S)", out)  # one per group
    hessian = next(s for s in sections if s.startswith("hessian/"))
    surface = next(s for s in sections if s.startswith("surface/"))
    assert code == 0
    assert "unverified: written before result digests" in hessian
    assert "unverified" not in surface


def test_a_chunk_that_fails_its_checksum_is_an_error_naming_the_file(tmp_path, capsys):
    import h5py

    path = _result_file(tmp_path / "r.h5")
    with h5py.File(path, "r") as f:
        offset = f["surface/run_epoch-010-sgd-random-2d/train_loss"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[offset.byte_offset + 3] ^= 0x10
    path.write_bytes(bytes(data))
    code, out, err = info(capsys, path)
    assert code == 1 and out == ""
    assert err.startswith(f"landscape: error: result file {path} is damaged (")


def test_a_result_finished_by_another_run_shows_what_computed_each_part(tmp_path, capsys):
    path = _result_file(tmp_path / "r.h5")
    sessions = [
        {"world_size": 2, "backend": "gloo", "points": 4},
        {"world_size": 1, "backend": "none", "points": 6},
    ]
    with store.transaction(path) as f:
        f["surface/run_epoch-010-sgd-random-2d"].attrs["sessions"] = json.dumps(sessions)
    code, out, _ = info(capsys, path)
    assert code == 0
    assert "computed by: 2 processes (gloo): 4 points; 1 process: 6 points" in out
