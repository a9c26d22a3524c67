"""--dry-run: the plan of an experiment (runs, epochs, SAM steps) and its measured time."""

import math

import pytest

from landscape.cli import main
from landscape.experiment.config import LateSamConfig
from landscape.experiment.estimate import format_plan, measure_step_seconds


def small():
    return LateSamConfig(epochs=10, batch_size=100, switch_epochs=[8], sam_sgd_epochs=[5],
                         seeds=[0, 1, 2])  # fmt: skip


def test_the_plan_lists_each_arm_with_its_runs_epochs_and_sam_steps():
    text = format_plan(small(), train_examples=1000)  # 10 steps per epoch
    assert "9 runs (3 arms x 3 seeds)" not in text and "12 runs (4 arms x 3 seeds)" in text
    assert "| late-sam t0=8 | 3 | 8-10 (from sgd) | 0 | 2 | 20 |" in text
    assert "| full-sam | 3 | 0-10 | 0 | 10 | 100 |" in text
    assert "| sam-sgd t1=5 | 3 | 5-10 (from full-sam) | 5 | 0 | 50 |" in text
    # 3 x (10 SGD + 2 SAM + 10 SAM + 5 SGD) = 45 SGD + 36 SAM epochs = 117 epoch-equivalents
    assert "45 SGD + 36 SAM epochs = 117 epoch-equivalents" in text
    assert "expected" not in text  # no time without a measurement


def test_the_expected_time_is_the_measured_step_times_the_step_equivalents():
    text = format_plan(small(), train_examples=1000, step_seconds=2.0, basis=" (a basis)")
    assert "2 s per SGD step (a basis) -> 20 s per SGD epoch" in text
    assert "expected training time 0:39:00" in text  # 117 x 10 steps x 2 s


def test_a_step_is_measured_on_the_model_at_the_training_batch():
    seconds = measure_step_seconds("mlp", (1, 8, 8), 10, batch_size=32, steps=2)
    assert math.isfinite(seconds) and 0 < seconds < 5


@pytest.mark.usefixtures("one_thread")
def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "exp"
    args = ["experiment", "late-sam", "--arch", "mlp", "--epochs", "4", "--seeds", "0,1"]
    assert main([*args, "--out", str(out), "--dry-run", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("plan of late-sam on digits / mlp: 8 runs")
    assert "expected training time" in text and "measured now" in text
    assert not out.exists()


def test_the_wrn16_8_config_is_the_papers_main_figure():
    from pathlib import Path

    from landscape.config_file import load_toml

    path = Path(__file__).parents[2] / "configs" / "late-sam-cifar10-wrn16-8.toml"
    values = load_toml(path)["experiment"]
    assert (values["dataset"], values["arch"], values["epochs"]) == ("cifar10", "wrn16-8", 200)
    assert (values["switch-epochs"], values["rho"], len(values["seeds"])) == ([175], 0.05, 5)


@pytest.mark.usefixtures("one_thread")
def test_the_label_noise_config_plans_mnist1d_with_noisy_labels(capsys):
    from pathlib import Path

    path = str(Path(__file__).parents[2] / "configs" / "late-sam-label-noise.toml")
    assert main(["experiment", "late-sam", "--config", path, "--dry-run", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("plan of late-sam on mnist1d / cnn1d: 25 runs (5 arms x 5 seeds)")
    assert "20 % of the training labels replaced (label_noise_seed 0)" in text
