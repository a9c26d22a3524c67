"""Every long command reports its phases the same way: name, count/total unit, estimate."""

import logging

import pytest
import torch

from landscape.cli import main
from landscape.loading import checkpoint
from landscape.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    paths = []
    for epoch in (3, 4):
        torch.manual_seed(epoch)
        path = folder / f"epoch-{epoch:03d}-sgd.pt"
        checkpoint.save_checkpoint(
            path,
            {
                "format": checkpoint.FORMAT,
                "version": checkpoint.VERSION,
                "arch": "mlp",
                "model": build_model("mlp", (1, 8, 8), 10).state_dict(),
                "epoch": epoch,
                "phase": "sgd",
                "config": {"dataset": "digits"},
                "history": [],
            },
        )
        paths.append(str(path))
    return paths


SAMPLES = ["--samples", "32", "--device", "cpu"]
CASES = {
    "surface": (
        lambda c, o: ["surface", c[0], "--x=-0.1:0.1:3", *SAMPLES, "--out", o],
        "surface 3: 3 points in ",
        "train_loss ",
    ),
    "interpolate": (
        lambda c, o: ["interpolate", *c, "--alpha=0:1:4", *SAMPLES, "--out", o],
        "interpolation 2 checkpoints: 4 points in ",
        "train_loss ",
    ),
    "sharpness": (
        lambda c, o: [
            "sharpness",
            c[0],
            "--measure",
            "worst-case",
            "--steps",
            "3",
            "--rho",
            "0.1",
            *SAMPLES,
            "--out",
            o,
        ],
        "worst-case: 3 steps in ",
        "max loss increase ",
    ),
    "escape": (
        lambda c, o: [
            "escape",
            c[0],
            "--rho",
            "0.1",
            "--lr",
            "0.1",
            "--steps",
            "3",
            *SAMPLES,
            "--out",
            o,
        ],
        "SAM escape: 3 steps in ",
        "distance ",
    ),
    "hessian": (
        lambda c, o: ["hessian", c[0], "--tol", "1e-2", *SAMPLES, "--out", o],
        "top-1 eigenvalue: ",
        "(target 0.01)",
    ),
    "train": (
        lambda c, o: [
            "train",
            "--arch",
            "mlp",
            "--epochs",
            "1",
            "--batch-size",
            "512",
            "--out",
            o.removesuffix(".h5"),
        ],
        "train: ",
        "train loss ",
    ),
}


@pytest.mark.parametrize("command", list(CASES))
def test_each_long_command_ends_its_phases_with_a_line_naming_count_and_estimate(
    command, ckpts, tmp_path, caplog
):
    argv, start, estimate = CASES[command]
    caplog.set_level(logging.INFO, logger="landscape.progress")
    assert main(argv(ckpts, str(tmp_path / "out.h5"))) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "landscape.progress"]
    assert any(line.startswith(start) and estimate in line for line in lines), lines


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [False, True])
def test_a_real_run_prints_plain_progress_lines_on_stderr_unless_quiet(ckpts, tmp_path, quiet):
    import os
    import subprocess
    import sys

    argv = [
        sys.executable,
        "-m",
        "landscape",
        *(["-q"] if quiet else []),
        "surface",
        ckpts[0],
        "--x=-0.1:0.1:3",
        *SAMPLES,
        "--out",
        str(tmp_path / "s.h5"),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("surface 3: 3 points in " in done.stderr) != quiet
