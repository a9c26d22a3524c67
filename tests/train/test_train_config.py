"""Resolving the run config: defaults, inheritance from a stored config, user errors."""

import pytest

from landscape.errors import UserError
from landscape.train.config import (
    TrainConfig,
    check_branch_point,
    check_world_size,
    resolve_config,
)


def test_defaults_are_the_offline_digits_run_with_sam_for_the_last_quarter():
    config = resolve_config({})
    assert (config.dataset, config.arch) == ("digits", "cnn-bn")
    assert config.sam_start == config.epochs - config.epochs // 4
    assert config.milestones == [config.epochs // 2]
    assert (config.lr, config.momentum, config.weight_decay, config.rho) == (0.1, 0.9, 5e-4, 0.05)


def test_milestones_follow_epochs_unless_given():
    assert resolve_config({"epochs": 160, "sam_start": 150}).milestones == [80]
    assert resolve_config({"epochs": 160, "milestones": "60,120"}).milestones == [60, 120]


@pytest.mark.parametrize(
    ("value", "expected"), [("never", None), ("none", None), ("7", 7), (0, 0), (10, 10)]
)
def test_sam_start_accepts_epochs_and_never(value, expected):
    assert resolve_config({"epochs": 10, "sam_start": value}).sam_start == expected


def test_stored_config_is_the_base_and_overrides_win():
    trunk = resolve_config({"epochs": 20, "sam_start": "never", "lr": 0.05})
    branch = resolve_config({"sam_start": 12}, base=trunk.to_dict())
    assert (branch.lr, branch.epochs, branch.milestones, branch.sam_start) == (0.05, 20, [10], 12)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 10, "sam_start": 11}, "beyond --epochs"),
        ({"rho": -0.05}, "--rho"),
        ({"epochs": 10, "sam_start": 5, "sam_end": 5}, "--sam-end"),
        ({"epochs": 10, "sam_start": 5, "sam_end": 11}, "--sam-end"),
        ({"epochs": 10, "sam_start": "never", "sam_end": 8}, "--sam-end needs"),
        ({"epochs": 10, "milestones": "8,4"}, "--milestones"),
        ({"epochs": 10, "milestones": "12"}, "--milestones"),
        ({"lr": 0}, "--lr"),
        ({"momentum": 1.0}, "--momentum"),
        ({"label_smoothing": 1.0}, "--label-smoothing"),
        ({"label_noise": 1.0}, "--label-noise"),
        ({"label_noise": -0.1}, "--label-noise"),
        ({"sam_start": "soon"}, "--sam-start"),
        ({"schedule": "linear"}, "--schedule"),
        ({"epochs": 0}, "--epochs"),
        ({"sam_ascent": "local"}, "--sam-ascent must be one of global, per-rank"),
    ],
)
def test_bad_values_are_user_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        resolve_config(overrides)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({}, "digits-cnn-bn-sam45-s0"),
        ({"sam_start": "never", "seed": 3}, "digits-cnn-bn-sgd-s3"),
        (
            {
                "dataset": "cifar10",
                "arch": "resnet20",
                "epochs": 160,
                "sam_start": 100,
                "sam_end": 150,
                "adaptive": True,
            },
            "cifar10-resnet20-asam100-150-s0",
        ),
    ],
)
def test_run_name_says_dataset_arch_switch_and_seed(overrides, name):
    assert resolve_config(overrides).run_name() == name


def test_differences_ignore_where_data_lives_and_how_often_to_save():
    a = resolve_config({"data_dir": "/a", "save_every": 1})
    assert a.differences(resolve_config({"data_dir": "/b", "save_every": 7})) == []
    assert a.differences(resolve_config({"lr": 0.2})) == ["lr"]


def test_the_world_size_shapes_the_trajectory_and_the_backend_does_not():
    one, two = resolve_config({}), resolve_config({})
    two.world_size, two.backend = 2, "gloo"
    assert one.differences(two) == ["world_size"]


def test_a_config_from_before_torchrun_reads_as_one_process():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("world_size", "backend")}
    assert (TrainConfig.from_dict(old).world_size, TrainConfig.from_dict(old).backend) == (
        1,
        "none",
    )


@pytest.mark.parametrize(("batch", "world"), [(128, 1), (128, 2), (129, 3)])
def test_a_global_batch_that_splits_evenly_over_the_ranks_is_accepted(batch, world):
    assert check_world_size(resolve_config({"batch_size": batch}), world) is None  # no UserError


@pytest.mark.parametrize(
    ("batch", "world", "advice"), [(127, 2, "126 or 128"), (3, 4, "4 or 4"), (130, 4, "128 or 132")]
)
def test_a_global_batch_the_ranks_cannot_share_is_one_error(batch, world, advice):
    with pytest.raises(UserError, match=f"--batch-size {batch} is the global batch") as caught:
        check_world_size(resolve_config({"batch_size": batch}), world)
    assert f"use e.g. {advice}" in str(caught.value)


def test_stored_configs_with_unknown_keys_still_load():
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "from_the_future": 1}) == TrainConfig()


def test_branch_cannot_put_sam_where_the_source_ran_sgd(tmp_path):
    history = [{"epoch": e, "phase": "sgd"} for e in range(1, 7)]
    check_branch_point(
        resolve_config({"epochs": 10, "sam_start": 6}), history, 6, tmp_path / "t.pt"
    )
    with pytest.raises(UserError, match="SAM can only start at epoch 6 or later"):
        check_branch_point(
            resolve_config({"epochs": 10, "sam_start": 4}), history, 6, tmp_path / "t.pt"
        )
    with pytest.raises(UserError, match="nothing to train"):
        check_branch_point(
            resolve_config({"epochs": 6, "sam_start": 6}), history, 6, tmp_path / "t.pt"
        )


def test_a_stored_config_cannot_make_timm_read_a_file():
    stored = TrainConfig(arch="timm:resnet18", arch_kwargs={"checkpoint_path": "/x.pth"})
    with pytest.raises(UserError, match=r"stored run config.*checkpoint_path.*--arch-kwargs"):
        resolve_config({}, base=stored.to_dict())


def test_loading_options_given_on_the_command_line_are_the_users_own():
    stored = TrainConfig(arch="timm:resnet18").to_dict()
    given = {"arch_kwargs": '{"checkpoint_path": "/x.pth"}'}
    assert resolve_config(given, base=stored).arch_kwargs == {"checkpoint_path": "/x.pth"}
