"""The training loop on digits with a tiny model: checkpoints, resume, branches, metrics."""

import json
import shutil

import pytest
import torch

from landscape.data import load_dataset
from landscape.errors import UserError
from landscape.loading.checkpoint import FORMAT
from landscape.train import resolve_config, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides):
    values = {"arch": "mlp-bn", "epochs": 4, "batch_size": 256, "sam_start": 2, "save_every": 0}
    return resolve_config({**values, **overrides})


def run(config, run_dir, digits, **kwargs):
    return train(config, run_dir, device="cpu", data=digits, progress=False, **kwargs)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(a, b):
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_checkpoint_names_and_phases_mark_the_switches(tmp_path, digits):
    paths = run(tiny(epochs=5, sam_start=2, sam_end=4), tmp_path / "r", digits)
    assert [p.name for p in paths] == ["epoch-002-sgd.pt", "epoch-004-sam.pt", "epoch-005-sgd.pt"]
    assert [(load(p)["epoch"], load(p)["phase"]) for p in paths] == [
        (2, "sgd"),
        (4, "sam"),
        (5, "sgd"),
    ]


def test_checkpoint_holds_the_design_fields_and_loads_weights_only(tmp_path, digits):
    (path,) = run(tiny(epochs=1, sam_start="never"), tmp_path / "r", digits)
    ckpt = load(path)
    assert ckpt["format"] == FORMAT and isinstance(ckpt["version"], int)
    assert ckpt["arch"] == "mlp-bn" and ckpt["epoch"] == 1 and ckpt["phase"] == "sgd"
    assert ckpt["config"]["dataset"] == "digits" and ckpt["config"]["augment"] == "none"
    assert {"python", "numpy", "torch", "generators"} <= set(ckpt["rng"])
    assert "momentum_buffer" in ckpt["optimizer"]["state"][0]
    assert ckpt["scheduler"]["name"] == "step" and ckpt["scheduler"]["last_epoch"] == 1
    assert [h["epoch"] for h in ckpt["history"]] == [1]
    assert set(ckpt["history"][0]) == {
        "epoch",
        "phase",
        "lr",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "seconds",
    }


def test_same_seed_gives_bit_identical_runs(tmp_path, digits):
    a = run(tiny(), tmp_path / "a", digits)[-1]
    b = run(tiny(), tmp_path / "b", digits)[-1]
    assert_same_weights(load(a), load(b))


def test_resume_from_a_middle_checkpoint_is_bit_identical(tmp_path, digits):
    full = run(tiny(save_every=1), tmp_path / "full", digits)
    # Pretend the run died after epoch 2, having appended a metrics line for epoch 3.
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(tmp_path / "full" / "config.json", part)
    shutil.copy(tmp_path / "full" / "epoch-002-sgd.pt", part)
    lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    (part / "metrics.jsonl").write_text("\n".join(lines[:3]) + '\n{"epoch": 4, "trunc')
    resumed = run(tiny(save_every=1), part, digits, resume=True)
    assert_same_weights(load(full[-1]), load(resumed[-1]))
    epochs = [
        json.loads(line)["epoch"] for line in (part / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2, 3, 4]


def test_rerunning_a_finished_run_trains_nothing(tmp_path, digits):
    first = run(tiny(), tmp_path / "r", digits)
    stamp = first[-1].stat().st_mtime_ns
    assert run(tiny(), tmp_path / "r", digits) == first
    assert first[-1].stat().st_mtime_ns == stamp


def test_a_different_config_in_an_existing_run_folder_is_refused(tmp_path, digits):
    run(tiny(epochs=2), tmp_path / "r", digits)
    with pytest.raises(UserError, match="different config.*lr"):
        run(tiny(epochs=2, lr=0.05), tmp_path / "r", digits)


def test_a_run_of_another_world_size_says_how_to_continue_it(tmp_path, digits):
    run(tiny(epochs=2), tmp_path / "r", digits)
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    (tmp_path / "r" / "config.json").write_text(json.dumps({**stored, "world_size": 2}))
    with pytest.raises(UserError, match="on 2 rank.*torchrun --nproc_per_node=2"):
        run(tiny(epochs=2), tmp_path / "r", digits)


def test_resume_without_a_checkpoint_is_refused(tmp_path, digits):
    with pytest.raises(UserError, match="nothing to resume"):
        run(tiny(), tmp_path / "empty", digits, resume=True)


def test_branch_from_an_sgd_trunk_equals_switching_in_one_run(tmp_path, digits):
    trunk = run(tiny(epochs=4, sam_start="never", save_every=1), tmp_path / "trunk", digits)
    branch_config = resolve_config({"sam_start": 2}, base=load(trunk[1])["config"])
    branch = run(branch_config, tmp_path / "branch", digits, from_checkpoint=trunk[1])
    direct = run(tiny(epochs=4, sam_start=2), tmp_path / "direct", digits)
    assert_same_weights(load(direct[-1]), load(branch[-1]))
    final = load(branch[-1])
    assert final["config"]["from_epoch"] == 2 and final["phase"] == "sam"
    assert [h["phase"] for h in final["history"]] == ["sgd", "sgd", "sam", "sam"]
    # The schedule continued: the lr after the trunk's milestone (epoch 2) is the dropped one.
    assert [h["lr"] for h in final["history"]] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def test_branch_that_rewrites_the_trunks_past_is_refused(tmp_path, digits):
    trunk = run(tiny(epochs=4, sam_start="never", save_every=1), tmp_path / "trunk", digits)
    config = resolve_config({"sam_start": 1}, base=load(trunk[2])["config"])
    with pytest.raises(UserError, match="SAM can only start at epoch 3 or later"):
        run(config, tmp_path / "branch", digits, from_checkpoint=trunk[2])


def test_momentum_reset_at_the_switch_changes_the_trajectory(tmp_path, digits):
    keep = run(tiny(momentum_across_switch="keep"), tmp_path / "keep", digits)
    reset = run(tiny(momentum_across_switch="reset"), tmp_path / "reset", digits)
    before = load(keep[0]), load(reset[0])  # the SGD solutions are the same
    assert_same_weights(*before)
    after = load(keep[-1])["model"], load(reset[-1])["model"]
    assert any(not torch.equal(after[0][k], after[1][k]) for k in after[0])


@pytest.mark.parametrize(("policy", "carried"), [("reset", False), ("keep", True)])
def test_the_first_sam_epoch_starts_with_or_without_the_sgd_momentum(
    tmp_path, digits, monkeypatch, policy, carried
):
    from landscape.train import loop

    buffers_at_start = []  # per epoch: the momentum buffers the optimizer holds when it begins
    original = loop.train_epoch

    def recording(*args, optimizer, **kwargs):
        buffers_at_start.append(
            [s["momentum_buffer"].clone() for s in optimizer.state.values() if s]
        )
        return original(*args, optimizer=optimizer, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", recording)
    run(tiny(momentum_across_switch=policy), tmp_path / policy, digits)
    sgd_last, sam_first = buffers_at_start[1], buffers_at_start[2]  # sam_start=2
    assert sgd_last and any(b.abs().sum() > 0 for b in sgd_last)  # SGD built momentum
    if carried:
        assert len(sam_first) == len(sgd_last) and all(b.abs().sum() > 0 for b in sam_first)
    else:
        assert sam_first == []  # the buffers are gone: SAM starts from zero momentum


def test_sam_epochs_do_not_move_batchnorm_statistics_twice_per_step(tmp_path, digits):
    paths = run(tiny(epochs=2, sam_start=0), tmp_path / "r", digits)
    steps = sum(1 for _ in range(0, 1437, 256)) * 2
    tracked = [v for k, v in load(paths[-1])["model"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(t) == steps for t in tracked)


@pytest.mark.parametrize(
    ("examples", "batch", "world", "steps"),
    [
        (1437, 64, 1, 23),  # a last batch of 29
        (1437, 64, 2, 23),  # 29 split 14 / 15
        (129, 64, 1, 2),  # a last batch of one is dropped (BatchNorm)
        (131, 64, 2, 2),  # 3 split 1 / 2: a rank would hold one example: dropped
        (132, 64, 2, 3),  # 4 split 2 / 2
        (133, 64, 3, 2),  # 5 split 1 / 2 / 2: dropped
    ],
)
def test_steps_per_epoch_drop_a_last_batch_that_leaves_a_rank_one_example(
    examples, batch, world, steps
):
    from landscape.train.loop import steps_per_epoch

    assert steps_per_epoch(examples, batch, world) == steps


def test_label_noise_trains_on_the_noisy_labels_and_is_recorded_in_the_checkpoint(tmp_path, digits):
    clean = run(tiny(epochs=1, sam_start="never"), tmp_path / "clean", digits)[-1]
    noisy = run(
        tiny(epochs=1, sam_start="never", label_noise=0.4, label_noise_seed=5),
        tmp_path / "noisy",
        digits,
    )[-1]
    config = load(noisy)["config"]
    assert (config["label_noise"], config["label_noise_seed"]) == (0.4, 5)
    assert json.loads((tmp_path / "noisy" / "config.json").read_text())["label_noise"] == 0.4
    first = [json.loads((tmp_path / r / "metrics.jsonl").read_text().splitlines()[0])
             for r in ("clean", "noisy")]  # fmt: skip
    assert first[1]["train_acc"] < first[0]["train_acc"] - 0.1  # fits labels that are wrong
    assert not torch.equal(*(load(p)["model"]["layers.1.weight"] for p in (clean, noisy)))
