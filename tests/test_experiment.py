"""`landscape experiment late-sam`: the plan of runs, the summary, and a tiny run end to end."""

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape.cli import main
from landscape.errors import UserError
from landscape.experiment import LateSamConfig, plan_runs
from landscape.experiment.plan import save_every_for
from landscape.experiment.summary import format_summary, format_table, summarise
from landscape.results.hessian import HessianResult


def test_plan_branches_late_sam_from_the_trunk_and_sam_sgd_from_full_sam():
    config = LateSamConfig(epochs=10, switch_epochs=[8, 4], sam_sgd_epochs=[2], seeds=[0, 1])
    runs = plan_runs(config)
    labels = [r.label for r in runs]
    assert labels[:5] == [
        "sgd-s0",
        "late-sam-t4-s0",
        "late-sam-t8-s0",
        "full-sam-s0",
        "sam-sgd-t2-s0",
    ]
    assert len(runs) == 10
    late = runs[1]
    assert (late.parent, late.branch_epoch, late.branch_phase, late.sam_start) == (
        "sgd-s0",
        4,
        "sgd",
        4,
    )
    sam_sgd = runs[4]
    assert (sam_sgd.parent, sam_sgd.branch_phase, sam_sgd.sam_start, sam_sgd.sam_end) == (
        "full-sam-s0",
        "sam",
        0,
        2,
    )
    assert all(labels.index(r.parent) < labels.index(r.label) for r in runs if r.parent)


def test_parents_save_every_epoch_a_branch_starts_from():
    config = LateSamConfig(epochs=40, switch_epochs=[20, 30, 35], sam_sgd_epochs=[8], seeds=[0])
    runs = {r.label: r for r in plan_runs(config)}
    assert save_every_for(runs["sgd-s0"], list(runs.values())) == 5
    assert save_every_for(runs["full-sam-s0"], list(runs.values())) == 8
    assert save_every_for(runs["late-sam-t20-s0"], list(runs.values())) == 0


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(switch_epochs=[40]), "switch epoch 40"),
        (dict(seeds=[]), "at least one seed"),
        (dict(full_sam=False, sam_sgd_epochs=[3]), "full_sam"),
        (dict(bn_mode="batch"), "bn_mode"),
        (dict(escape_bn_mode="batch"), "escape_bn_mode"),
        (dict(escape_divergence_factor=1.0), "escape_divergence_factor"),
        (dict(sharpness_rho=[0.05, -0.1]), "sharpness_rho"),
        (dict(sharpness_rho=[0.05, 0.05]), "sharpness_rho"),
    ],
)
def test_inconsistent_options_are_user_errors(change, message):
    with pytest.raises(UserError, match=message):
        LateSamConfig(epochs=40, **change).validate()


def test_summary_is_mean_and_sample_std_per_arm_in_first_seen_order():
    rows = [
        dict(
            arm_label="sgd",
            arm="sgd",
            t0=math.nan,
            t1=math.nan,
            test_acc=0.9,
            lambda1=10.0,
            trace=1.0,
            worst_case=0.1,
        ),
        dict(
            arm_label="late-sam t0=3",
            arm="late-sam",
            t0=3.0,
            t1=math.nan,
            test_acc=0.95,
            lambda1=5.0,
            trace=1.0,
            worst_case=0.05,
        ),
        dict(
            arm_label="sgd",
            arm="sgd",
            t0=math.nan,
            t1=math.nan,
            test_acc=0.8,
            lambda1=12.0,
            trace=3.0,
            worst_case=math.nan,
        ),
    ]
    sgd, late = summarise(rows)
    assert (sgd.arm_label, sgd.n_seeds, late.n_seeds) == ("sgd", 2, 1)
    assert sgd.mean["lambda1"] == pytest.approx(11.0) and sgd.std["lambda1"] == pytest.approx(
        math.sqrt(2)
    )
    assert sgd.mean["worst_case"] == pytest.approx(0.1)  # NaN (not computed) left out
    assert late.std["test_acc"] == 0.0
    table = format_table([sgd, late])
    assert table.splitlines()[0].startswith("| arm | seeds | test acc (%)")
    assert "| late-sam t0=3 | 1 | 95 ± 0 |" in table


TINY = [
    "experiment",
    "late-sam",
    "--arch",
    "mlp",
    "--epochs",
    "2",
    "--switch-epochs",
    "1",
    "--seeds",
    "0",
    "--samples",
    "32",
    "--interpolation-points",
    "3",
    "--escape-steps",
    "4",
    "--escape-eig-every",
    "2",
    "--trace-max-hvps",
    "12",
    "--trace-rel-stderr",
    "0.5",
    "--sharpness-steps",
    "2",
    "--eig-tol",
    "0.05",
    "--device",
    "cpu",
    "--no-figures",
]


def test_tiny_experiment_runs_end_to_end_and_a_rerun_skips_everything(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main([*TINY, "--out", str(out)]) == 0
    first = capsys.readouterr().out
    for arm in ("sgd", "late-sam t0=1", "full-sam", "sam-sgd t1=1"):
        assert f"| {arm} | 1 |" in first
    with h5py.File(out / "result.h5") as f:
        runs = f["experiment/late-sam/runs"]
        assert [x.decode() for x in runs["label"][()]] == [
            "sgd-s0",
            "late-sam-t1-s0",
            "full-sam-s0",
            "sam-sgd-t1-s0",
        ]
        assert np.all(runs["done"][()]) and np.all(np.isfinite(runs["lambda1"][()]))
        assert np.isnan(runs["t0"][0]) and runs["t0"][1] == 1
        assert "summary_text" in f["experiment/late-sam"].attrs
        assert set(f["experiment/late-sam/summary"]) >= {
            "arm_label",
            "test_acc_mean",
            "lambda1_std",
        }
        assert (
            set(f["hessian"])
            == set(f["sharpness"])
            == {"sgd-s0", "late-sam-t1-s0", "full-sam-s0", "sam-sgd-t1-s0"}
        )
        assert set(f["interpolation"]) == {"sgd-s0_to_late-sam-t1-s0", "sgd-s0_to_full-sam-s0"}
        line = f["interpolation/sgd-s0_to_full-sam-s0"]  # the layout of `landscape interpolate`
        assert line["train_loss"].dims[0][0].name == line["alpha"].name
        assert {"segment", "segment_alpha"} <= set(line) and "checkpoints" in line.attrs
        assert list(f["escape"]) == ["sgd-s0-epoch001"]
        # the commands' layout (landscape.results): error bounds and the trace's estimator too
        hessian = HessianResult.read(f["hessian/sgd-s0"])
        assert np.isfinite(hessian.top.error_bounds).all() and hessian.trace.method
        stamp = f["hessian/sgd-s0"].attrs["seconds"]
    assert main([*TINY, "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[:6] == first.splitlines()[:6]
    with h5py.File(out / "result.h5") as f:
        assert f["hessian/sgd-s0"].attrs["seconds"] == stamp  # not recomputed


def test_experiment_reads_its_options_from_a_toml_file(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(
        'arch = "mlp"\nepochs = 2\nswitch_epochs = [1]\nseeds = [0]\nfull_sam = false\n'
        "sam_sgd_epochs = []\n"
        "samples = 32\ninterpolation_points = 2\nescape = false\ntrace_max_hvps = 12\n"
        "trace_rel_stderr = 0.5\nsharpness_steps = 1\neig_tol = 0.05\n"
    )
    out = tmp_path / "exp"
    assert (
        main(
            [
                "experiment",
                "late-sam",
                "--config",
                str(config),
                "--out",
                str(out),
                "--no-figures",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with h5py.File(out / "result.h5") as f:
        assert [x.decode() for x in f["experiment/late-sam/runs/label"][()]] == [
            "sgd-s0",
            "late-sam-t1-s0",
        ]
        assert "escape" not in f


@pytest.mark.parametrize(
    ("options", "kind", "expected"),
    [
        ({"analysis_batch_size": 7}, "hvp", 7),
        ({"bn_mode": "train"}, "hvp", 512),
        ({"bn_mode": "train"}, "gradient", 512),
        ({}, "hvp", "measured"),
        ({}, "gradient", "measured"),
        ({"bn_mode": "train"}, "forward", "measured"),
    ],
)
def test_analysis_batches_are_measured_unless_given_or_defining_batchnorm_statistics(
    options, kind, expected
):
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F
    from torch import nn

    from landscape.experiment.late_sam import _Context

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 3)).eval()
    context = SimpleNamespace(
        config=LateSamConfig(**options),
        x=torch.randn(40, 4),
        y=torch.arange(40) % 3,
        loss_fn=F.cross_entropy,
    )
    size = _Context.batch(context, kind, model)
    if expected == "measured":
        step = 2.0 if kind == "hvp" else 1.5
        from landscape.batching import candidate_sizes

        assert size in candidate_sizes(40, step=step)
    else:
        assert size == expected


def _row(arm, seed, value, label=None):
    return dict(arm_label=label or arm, arm=arm, seed=seed, t0=math.nan, t1=math.nan, lambda1=value)


def test_gap_closed_is_paired_within_each_seed_with_a_student_t_interval():
    from scipy.stats import t

    sgd, full, late = [10.0, 14.0, 8.0], [6.0, 10.0, 4.0], [8.0, 11.0, 7.0]  # closes 50, 75, 25 %
    rows = [
        r
        for s in range(3)
        for r in (
            _row("sgd", s, sgd[s]),
            _row("full-sam", s, full[s]),
            _row("late-sam", s, late[s], "late-sam t0=5"),
        )
    ]
    by_label = {s.arm_label: s for s in summarise(rows)}
    gap = by_label["late-sam t0=5"].gap["lambda1"]
    half = t.ppf(0.975, 2) * np.std([0.5, 0.75, 0.25], ddof=1) / math.sqrt(3)
    assert (gap.mean, gap.n) == (pytest.approx(0.5), 3)
    assert (gap.low, gap.high) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    diff = by_label["late-sam t0=5"].diff["lambda1"]
    assert diff.mean == pytest.approx(np.mean([-2.0, -3.0, -1.0]))
    assert (
        by_label["sgd"].gap["lambda1"].mean == 0 and by_label["full-sam"].gap["lambda1"].mean == 1
    )
    # Unpaired, the arms overlap: the seed spread (std 3.1) exceeds the effect (2).
    assert by_label["sgd"].std["lambda1"] > abs(diff.mean)


def test_a_seed_without_a_gap_is_left_out_of_the_gap_mean():
    rows = [
        _row("sgd", 0, 5.0),
        _row("full-sam", 0, 5.0),
        _row("late-sam", 0, 4.0),
        _row("sgd", 1, 5.0),
        _row("full-sam", 1, 3.0),
        _row("late-sam", 1, 4.0),
    ]
    summaries = summarise(rows)
    late = summaries[2]
    assert late.gap["lambda1"].n == 1 and late.gap["lambda1"].mean == pytest.approx(0.5)
    assert math.isnan(late.gap["lambda1"].low)
    assert "| 50 (1 of 2 seeds) |" in format_summary(summaries)


def test_paired_table_shows_the_gap_closed_with_its_interval_and_sam_steps():
    rows = [
        dict(r, sam_steps=steps)
        for s in range(2)
        for r, steps in (
            (_row("sgd", s, 10.0), 0),
            (_row("full-sam", s, 6.0), 900),
            (_row("late-sam", s, 8.0 + s, "late-sam t0=5"), 450),
        )
    ]
    text = format_summary(summarise(rows))
    assert "| late-sam t0=5 | 450 | 2 |" in text
    assert "λ1 gap closed (%)" in text and "t-interval" in text


def test_the_default_gives_late_sam_thousands_of_steps_in_the_last_quarter():
    config = LateSamConfig().validate()
    steps = config.steps_per_epoch(1437)  # digits training split
    assert config.milestones is None or config.milestones == [config.epochs // 2]
    assert (
        min(config.switch_epochs) >= 0.75 * config.epochs
        and max(config.switch_epochs) <= 0.95 * config.epochs
    )
    assert (config.epochs - min(config.switch_epochs)) * steps >= 3000


@pytest.mark.parametrize(
    "name, epochs, batch", [("late-sam-digits", 300, 32), ("late-sam-digits-quick", 60, 128)]
)
def test_the_named_digits_configs(name, epochs, batch):
    from landscape.config_file import load_toml

    values = load_toml(Path(__file__).parents[1] / "configs" / f"{name}.toml")["experiment"]
    assert (values["epochs"], values["batch-size"]) == (epochs, batch)


def test_escape_follows_the_training_batchnorm_and_weight_decay_by_default():
    from torch import nn

    from landscape.experiment.late_sam import escape_settings

    config = LateSamConfig(
        epochs=10, switch_epochs=[8], weight_decay=3e-4, momentum=0.8, seeds=[0]
    ).validate()
    sgd = plan_runs(config)[0]
    with_bn = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    settings = escape_settings(config, sgd, with_bn)
    assert (settings["bn_mode"], settings["weight_decay"], settings["momentum"]) == (
        "train",
        3e-4,
        0.8,
    )
    assert settings["lr"] == pytest.approx(0.01)  # after the decay at epoch 5
    assert escape_settings(config, sgd, nn.Linear(2, 2))["bn_mode"] == "eval"
    config.escape_bn_mode, config.escape_weight_decay = "eval", 0.0
    assert escape_settings(config, sgd, with_bn)["bn_mode"] == "eval"
    assert escape_settings(config, sgd, with_bn)["weight_decay"] == 0.0


def test_a_diverging_escape_is_reported_and_stored_without_a_growth_rate(tmp_path, capsys):
    out = tmp_path / "exp"
    argv = [
        "experiment",
        "late-sam",
        "--arch",
        "mlp",
        "--epochs",
        "2",
        "--switch-epochs",
        "1",
        "--seeds",
        "0",
        "--no-full-sam",
        "--sam-sgd-epochs",
        "",
        "--samples",
        "32",
        "--interpolation-points",
        "2",
        "--escape-steps",
        "20",
        "--escape-lr",
        "50",
        "--escape-eig-every",
        "100",
        "--trace-max-hvps",
        "12",
        "--trace-rel-stderr",
        "0.5",
        "--sharpness-steps",
        "1",
        "--eig-tol",
        "0.05",
        "--device",
        "cpu",
        "--no-figures",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    import torch

    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert "DIVERGED at step" in capsys.readouterr().out
    with h5py.File(out / "result.h5") as f:
        (name,) = list(f["escape"])
        attrs = f["escape"][name].attrs
        assert 0 < attrs["diverged_at"] <= 20 and math.isnan(attrs["growth_rate"])
        assert "DIVERGED" in f["experiment/late-sam"].attrs["summary_text"]


def test_the_summary_states_full_sam_minus_sgd_paired_with_its_interval():
    rows = []
    for s, (sgd_acc, sam_acc) in enumerate([(0.90, 0.92), (0.80, 0.83), (0.85, 0.86)]):
        rows += [
            dict(_row("sgd", s, 10.0), test_acc=sgd_acc),
            dict(_row("full-sam", s, 6.0), test_acc=sam_acc),
        ]
    text = format_summary(summarise(rows))
    line = next(x for x in text.splitlines() if x.startswith("full SAM - SGD"))
    assert "test error -2 pp [" in line and "λ1 -4" in line and "3 seeds" in line
