"""`landscape experiment late-sam`: the plan of runs, the summary, and a tiny run end to end."""

import math

import h5py
import numpy as np
import pytest

from landscape.cli import main
from landscape.errors import UserError
from landscape.experiment import LateSamConfig, plan_runs
from landscape.experiment.plan import save_every_for
from landscape.experiment.summary import format_table, summarise


def test_plan_branches_late_sam_from_the_trunk_and_sam_sgd_from_full_sam():
    config = LateSamConfig(epochs=10, switch_epochs=[8, 4], sam_sgd_epochs=[2], seeds=[0, 1])
    runs = plan_runs(config)
    labels = [r.label for r in runs]
    assert labels[:5] == ["sgd-s0", "late-sam-t4-s0", "late-sam-t8-s0", "full-sam-s0", "sam-sgd-t2-s0"]
    assert len(runs) == 10
    late = runs[1]
    assert (late.parent, late.branch_epoch, late.branch_phase, late.sam_start) == ("sgd-s0", 4, "sgd", 4)
    sam_sgd = runs[4]
    assert (sam_sgd.parent, sam_sgd.branch_phase, sam_sgd.sam_start, sam_sgd.sam_end) == ("full-sam-s0", "sam", 0, 2)
    assert all(labels.index(r.parent) < labels.index(r.label) for r in runs if r.parent)


def test_parents_save_every_epoch_a_branch_starts_from():
    config = LateSamConfig(epochs=40, switch_epochs=[20, 30, 35], sam_sgd_epochs=[8], seeds=[0])
    runs = {r.label: r for r in plan_runs(config)}
    assert save_every_for(runs["sgd-s0"], list(runs.values())) == 5
    assert save_every_for(runs["full-sam-s0"], list(runs.values())) == 8
    assert save_every_for(runs["late-sam-t20-s0"], list(runs.values())) == 0


@pytest.mark.parametrize("change, message", [
    (dict(switch_epochs=[40]), "switch epoch 40"),
    (dict(seeds=[]), "at least one seed"),
    (dict(full_sam=False, sam_sgd_epochs=[3]), "full_sam"),
    (dict(bn_mode="batch"), "bn_mode"),
])
def test_inconsistent_options_are_user_errors(change, message):
    with pytest.raises(UserError, match=message):
        LateSamConfig(epochs=40, **change).validate()


def test_summary_is_mean_and_sample_std_per_arm_in_first_seen_order():
    rows = [
        dict(arm_label="sgd", arm="sgd", t0=math.nan, t1=math.nan, test_acc=0.9, lambda1=10.0, trace=1.0, worst_case=0.1),
        dict(arm_label="late-sam t0=3", arm="late-sam", t0=3.0, t1=math.nan, test_acc=0.95, lambda1=5.0, trace=1.0, worst_case=0.05),
        dict(arm_label="sgd", arm="sgd", t0=math.nan, t1=math.nan, test_acc=0.8, lambda1=12.0, trace=3.0, worst_case=math.nan),
    ]
    sgd, late = summarise(rows)
    assert (sgd.arm_label, sgd.n_seeds, late.n_seeds) == ("sgd", 2, 1)
    assert sgd.mean["lambda1"] == pytest.approx(11.0) and sgd.std["lambda1"] == pytest.approx(math.sqrt(2))
    assert sgd.mean["worst_case"] == pytest.approx(0.1)  # NaN (not computed) left out
    assert late.std["test_acc"] == 0.0
    table = format_table([sgd, late])
    assert table.splitlines()[0].startswith("| arm | seeds | test acc (%)")
    assert "| late-sam t0=3 | 1 | 95 ± 0 |" in table


TINY = ["experiment", "late-sam", "--arch", "mlp", "--epochs", "2", "--switch-epochs", "1",
        "--seeds", "0", "--samples", "32", "--interpolation-points", "3", "--escape-steps", "4",
        "--escape-eig-every", "2", "--trace-max-hvps", "12", "--trace-rel-stderr", "0.5",
        "--sharpness-steps", "2", "--eig-tol", "0.05", "--device", "cpu", "--no-figures"]


def test_tiny_experiment_runs_end_to_end_and_a_rerun_skips_everything(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main([*TINY, "--out", str(out)]) == 0
    first = capsys.readouterr().out
    for arm in ("sgd", "late-sam t0=1", "full-sam", "sam-sgd t1=1"):
        assert f"| {arm} | 1 |" in first
    with h5py.File(out / "result.h5") as f:
        runs = f["experiment/late-sam/runs"]
        assert [x.decode() for x in runs["label"][()]] == ["sgd-s0", "late-sam-t1-s0", "full-sam-s0", "sam-sgd-t1-s0"]
        assert np.all(runs["done"][()]) and np.all(np.isfinite(runs["lambda1"][()]))
        assert np.isnan(runs["t0"][0]) and runs["t0"][1] == 1
        assert "summary_text" in f["experiment/late-sam"].attrs
        assert set(f["experiment/late-sam/summary"]) >= {"arm_label", "test_acc_mean", "lambda1_std"}
        assert set(f["hessian"]) == set(f["sharpness"]) == {"sgd-s0", "late-sam-t1-s0", "full-sam-s0", "sam-sgd-t1-s0"}
        assert set(f["interpolation"]) == {"sgd-s0_to_late-sam-t1-s0", "sgd-s0_to_full-sam-s0"}
        assert list(f["escape"]) == ["sgd-s0-epoch001"]
        stamp = f["hessian/sgd-s0"].attrs["seconds"]
    assert main([*TINY, "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[:6] == first.splitlines()[:6]
    with h5py.File(out / "result.h5") as f:
        assert f["hessian/sgd-s0"].attrs["seconds"] == stamp  # not recomputed


def test_experiment_reads_its_options_from_a_toml_file(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text('arch = "mlp"\nepochs = 2\nswitch_epochs = [1]\nseeds = [0]\nfull_sam = false\nsam_sgd_epochs = []\n'
                      'samples = 32\ninterpolation_points = 2\nescape = false\ntrace_max_hvps = 12\n'
                      'trace_rel_stderr = 0.5\nsharpness_steps = 1\neig_tol = 0.05\n')
    out = tmp_path / "exp"
    assert main(["experiment", "late-sam", "--config", str(config), "--out", str(out), "--no-figures",
                 "--device", "cpu"]) == 0
    with h5py.File(out / "result.h5") as f:
        assert [x.decode() for x in f["experiment/late-sam/runs/label"][()]] == ["sgd-s0", "late-sam-t1-s0"]
        assert "escape" not in f


@pytest.mark.parametrize(
    ("options", "kind", "expected"),
    [({"analysis_batch_size": 7}, "hvp", 7), ({"bn_mode": "train"}, "hvp", 512), ({"bn_mode": "train"}, "gradient", 512),
     ({}, "hvp", "measured"), ({}, "gradient", "measured"), ({"bn_mode": "train"}, "forward", "measured")],
)
def test_analysis_batches_are_measured_unless_given_or_defining_batchnorm_statistics(options, kind, expected):
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F
    from torch import nn

    from landscape.experiment.late_sam import _Context

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 3)).eval()
    context = SimpleNamespace(config=LateSamConfig(**options), x=torch.randn(40, 4), y=torch.arange(40) % 3,
                              loss_fn=F.cross_entropy)
    size = _Context.batch(context, kind, model)
    if expected == "measured":
        step = 2.0 if kind == "hvp" else 1.5
        from landscape.batching import candidate_sizes

        assert size in candidate_sizes(40, step=step)
    else:
        assert size == expected
