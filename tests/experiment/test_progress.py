"""The late-SAM experiment says one line per run: run i/N, arm, seed, phase and the ETA."""

import logging

import pytest

from landscape.experiment.config import LateSamConfig
from landscape.experiment.plan import plan_runs
from landscape.experiment.progress import ExperimentProgress, epochs_trained, run_cost


def config():
    return LateSamConfig(epochs=10, switch_epochs=[8], sam_sgd_epochs=[5], seeds=[0, 1]).validate()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_each_run_costs_its_own_epochs_with_sam_epochs_counted_twice():
    runs = {r.label: r for r in plan_runs(config())}
    assert epochs_trained(runs["sgd-s0"], 10) == (10, 0)
    assert epochs_trained(runs["late-sam-t8-s0"], 10) == (0, 2)  # branched at epoch 8
    assert epochs_trained(runs["full-sam-s0"], 10) == (0, 10)
    assert epochs_trained(runs["sam-sgd-t5-s0"], 10) == (5, 0)  # branched at epoch 5
    assert run_cost(runs["late-sam-t8-s0"], 10) == 4.0


def test_one_line_per_run_with_the_eta_of_the_training_left_at_the_measured_rate():
    runs, lines, clock = plan_runs(config()), [], Clock()
    progress = ExperimentProgress(runs, 10, clock=clock, emit=lines.append)
    progress.train(1, runs[0], done=False)  # sgd-s0: 10 epoch-equivalents, takes 20 s
    clock.now = 20.0
    progress.train(2, runs[1], done=False)
    assert lines[0] == "run 1/8 train sgd, seed 0: epochs 0-10 (10 SGD); ETA after the first run"
    # left: this run (4) + full-sam (20) + sam-sgd (5) + seed 1 (10 + 4 + 20 + 5) = 68 at 2 s each
    assert lines[1] == (
        "run 2/8 train late-sam t0=8, seed 0: epochs 8-10 (2 SAM) from sgd-s0; "
        "ETA 0:02:16 for the training, then the analyses"
    )
    assert len(lines) == 2


def test_a_run_trained_before_says_so_and_leaves_the_rate_alone():
    runs, lines, clock = plan_runs(config()), [], Clock()
    progress = ExperimentProgress(runs, 10, clock=clock, emit=lines.append)
    progress.train(1, runs[0], done=True)
    clock.now = 100.0
    progress.train(2, runs[1], done=False)
    assert lines[0].endswith(": already trained")
    assert lines[1].endswith("ETA after the first run")


def test_analyses_get_their_own_eta_from_the_seconds_per_analysed_run():
    runs, lines, clock = plan_runs(config()), [], Clock()
    progress = ExperimentProgress(runs, 10, clock=clock, emit=lines.append)
    progress.analyse(1, runs[0])
    clock.now = 30.0
    progress.analyse(2, runs[1])
    assert lines[0] == "run 1/8 analyse sgd, seed 0; ETA after the first analysis"
    assert lines[1].startswith("run 2/8 analyse late-sam t0=8, seed 0; ETA 0:03:30")


@pytest.mark.parametrize(("flags", "per_epoch"), [([], False), (["-v"], True)])
def test_the_experiment_prints_epochs_only_with_verbose(tmp_path, caplog, flags, per_epoch):
    from landscape.cli import main

    caplog.set_level(logging.DEBUG if per_epoch else logging.INFO)
    tiny = ["--arch", "mlp", "--epochs", "2", "--switch-epochs", "1", "--seeds", "0"]
    tiny += ["--no-full-sam", "--sam-sgd-epochs", "", "--no-escape", "--samples", "16"]
    tiny += ["--interpolation-points", "2", "--trace-max-hvps", "4", "--trace-rel-stderr", "1"]
    tiny += ["--sharpness-steps", "1", "--eig-tol", "0.5", "--no-figures", "--device", "cpu"]
    assert main([*flags, "experiment", "late-sam", *tiny, "--out", str(tmp_path)]) == 0
    messages = [r.getMessage() for r in caplog.records]
    runs = [m for m in messages if m.startswith("run ") and " train " in m]
    assert [m.split(":")[0] for m in runs] == [
        "run 1/2 train sgd, seed 0",
        "run 2/2 train late-sam t0=1, seed 0",
    ]
    epochs = [m for m in messages if m.startswith("epoch ") and "train loss" in m]
    assert bool(epochs) == per_epoch
    lines = (tmp_path / "checkpoints" / "sgd-s0" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # the epochs are on disk either way
