"""`landscape train` from the command line: defaults, config files, errors, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from landscape.cli import build_parser, main
from landscape.config_file import read_config_file
from landscape.train.config import resolve_config

REPO = Path(__file__).resolve().parents[2]
TINY = ["--arch", "mlp-bn", "--epochs", "3", "--sam-start", "2", "--batch-size", "256"]


pytestmark = pytest.mark.usefixtures("one_thread")


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_smoke_trains_digits_and_prints_the_run_and_its_checkpoints(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), *TINY]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "digits-mlp-bn-sam2-s0"
    assert str(run_dir) in out and "test loss" in out
    names = sorted(p.name for p in run_dir.glob("*.pt"))
    assert names == ["epoch-002-sgd.pt", "epoch-003-sam.pt"]
    assert all(str(run_dir / n) in out for n in names)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_no_arguments_trains_the_digits_default(tmp_path):
    # A real process: `landscape train` sets up its threads before torch is imported.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-m", "landscape", "train"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    run_dir = tmp_path / "checkpoints" / "digits-cnn-bn-sam45-s0"
    final = load(run_dir / "epoch-060-sam.pt")
    assert load(run_dir / "epoch-045-sgd.pt")["phase"] == "sgd"
    assert final["history"][-1]["test_acc"] > 0.9


def test_config_file_sets_defaults_and_flags_override_it(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('arch = "mlp"\nepochs = 2\nsam-start = 1\nmilestones = [1]\nrho = 0.1\n')
    assert (
        main(
            ["train", "--config", str(config), "--out", str(tmp_path), "--run", "r", "--rho", "0.2"]
        )
        == 0
    )
    stored = load(tmp_path / "r" / "epoch-002-sam.pt")["config"]
    assert (stored["arch"], stored["epochs"], stored["milestones"], stored["rho"]) == (
        "mlp",
        2,
        [1],
        0.2,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "5", "--sam-start", "6"], "--sam-start 6 is beyond --epochs 5"),
        (["--rho", "-0.1"], "--rho must be >= 0"),
        (["--from", "missing.pt"], "no such checkpoint"),
        (["--arch", "resnet7"], "unknown architecture"),
        (["--dataset", "cifar10", "--data-dir", "nowhere"], "--download"),
        (["--run", "nothing-here", "--resume"], "nothing to resume"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(tmp_path, capsys, flags, message):
    assert main(["train", "--out", str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("landscape: error: ") and message in err and "\n" not in err


def test_a_different_config_for_an_existing_run_is_a_user_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--run", "r", *TINY]) == 0
    assert main(["train", "--out", str(tmp_path), "--run", "r", *TINY, "--lr", "0.3"]) == 1
    assert "different config" in capsys.readouterr().err


def test_bad_flag_values_are_usage_errors():
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "many"])
    assert exc.value.code == 2


def test_from_branches_and_resume_continues_with_the_stored_config(tmp_path, capsys):
    trunk = [
        "--arch",
        "mlp",
        "--epochs",
        "4",
        "--sam-start",
        "never",
        "--batch-size",
        "256",
        "--save-every",
        "1",
    ]
    assert main(["train", "--out", str(tmp_path), "--run", "trunk", *trunk]) == 0
    branch_point = tmp_path / "trunk" / "epoch-002-sgd.pt"
    assert (
        main(["train", "--out", str(tmp_path), "--from", str(branch_point), "--sam-start", "2"])
        == 0
    )
    branch = tmp_path / "digits-mlp-sam2-s0-from002"
    final = load(branch / "epoch-004-sam.pt")
    assert [h["phase"] for h in final["history"]] == ["sgd", "sgd", "sam", "sam"]
    # --resume needs only the run's name: its flags come from the stored config.
    (branch / "epoch-004-sam.pt").unlink()
    assert main(["train", "--out", str(tmp_path), "--run", branch.name, "--resume"]) == 0
    resumed = load(branch / "epoch-004-sam.pt")["model"]
    assert all(torch.equal(resumed[k], v) for k, v in final["model"].items())


TRAIN_CONFIGS = sorted(p for p in (REPO / "configs").glob("*.toml") if "[train]" in p.read_text())


def test_the_paper_settings_and_the_digits_default_are_shipped():
    names = {p.name for p in TRAIN_CONFIGS}
    assert {
        "digits.toml",
        "cifar10-resnet20.toml",
        "cifar10-vgg16-bn.toml",
        "cifar10-wrn16-8.toml",
    } <= names


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    _, subparsers = build_parser()
    values = read_config_file(path, subparsers["train"])
    keys = (
        "dataset",
        "arch",
        "epochs",
        "batch_size",
        "lr",
        "momentum",
        "weight_decay",
        "schedule",
        "milestones",
        "sam_start",
        "sam_end",
        "rho",
        "adaptive",
        "augment",
        "label_smoothing",
        "save_every",
    )
    config = resolve_config({k: values[k] for k in keys if k in values})
    assert (config.dataset, config.arch) == (values["dataset"], values["arch"])
    assert config.sam_start is not None and config.sam_start < config.epochs


def _train_command(out: Path, run: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "landscape",
        "train",
        "--out",
        str(out),
        "--run",
        run,
        "--threads",
        "1",
        "--arch",
        "cnn-bn",
        "--epochs",
        "16",
        "--sam-start",
        "10",
        "--batch-size",
        "64",
        "--save-every",
        "1",
    ]


@pytest.mark.slow
def test_resume_after_sigkill_ends_bit_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(_train_command(tmp_path, "whole"), check=True, env=env, capture_output=True)

    victim = subprocess.Popen(
        _train_command(tmp_path, "killed"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "killed" / "epoch-004-sgd.pt").exists():
        assert victim.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "epoch-016-sam.pt").exists()  # it did die mid-run
    subprocess.run(_train_command(tmp_path, "killed"), check=True, env=env, capture_output=True)

    whole = load(tmp_path / "whole" / "epoch-016-sam.pt")
    resumed = load(tmp_path / "killed" / "epoch-016-sam.pt")
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 17))


def test_digits_config_is_the_no_argument_default():
    _, subparsers = build_parser()
    values = read_config_file(REPO / "configs" / "digits.toml", subparsers["train"])
    assert resolve_config(values) == resolve_config({})


def test_a_read_only_output_folder_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    import errno

    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):  # what a read-only folder does (root ignores chmod)
        if self.parent == tmp_path / "ro":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(["train", "--out", str(tmp_path / "ro"), "--run", "r", *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"landscape: error: output folder {tmp_path / 'ro'} is not writable")
    assert "\n" not in err


@pytest.mark.parametrize("run", ["../../escaped", "/tmp/escaped-abs", "a/b", "..", " "])
def test_a_run_name_that_is_a_path_is_refused_before_anything_is_written(tmp_path, capsys, run):
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    assert main(["train", "--out", str(out), "--run", run, *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("landscape: error: --run ") and "is not a run name" in err
    assert [p for p in tmp_path.rglob("*") if p != out and p != out.parent] == []
    assert not Path("/tmp/escaped-abs").exists()


def test_a_run_path_in_a_config_file_is_refused(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('run = "../../escaped"\n')
    out = tmp_path / "out"
    assert main(["train", "--config", str(config), "--out", str(out), *TINY]) == 1
    assert "'../../escaped' is not a run name" in capsys.readouterr().err
    assert not (tmp_path.parent / "escaped").exists()
