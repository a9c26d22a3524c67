"""landscape experiment: the paper's late-SAM experiment end to end, in one command."""

from __future__ import annotations

import argparse
import dataclasses

from landscape.cli.common import (
    add_config,
    add_device,
    float_list,
    nonnegative_float,
    positive_float,
    positive_int,
)

HELP = "late-SAM experiment: SGD trunk, SAM branches at t0, full SAM; curvature, sharpness, summary"
DESCRIPTION = """\
late-sam (Zhou et al., ICLR 2025, "Sharpness-Aware Minimization Efficiently Selects
Flatter Minima Late in Training"): trains an SGD trunk, branches that switch to SAM at
each t0 in --switch-epochs (landscape train --from the trunk's checkpoint), a full-SAM run
and optional SAM->SGD runs, for every seed; then measures every final model (test
accuracy, top Hessian eigenvalue, trace, worst-case sharpness), interpolates from each SGD
solution to the SAM solutions, runs the escape curve from the SGD trunk at the latest t0
(full-batch SAM with the training's lr, momentum, weight decay and BatchNorm mode; a run
whose loss blows up is stopped and reported as DIVERGED, with no growth rate), prints
mean +- std over seeds per arm and, paired within each seed, the share of the SGD ->
full-SAM gap each arm closes (mean [95 % t-interval] over seeds) beside its SAM steps,
then one verdict line per claim of the paper (rules below), and renders the figures with
`landscape plot` (error and sharpness against t0, gap closed against SAM steps).
While it runs: one line per run (run i/N, arm, seed, ETA); -v adds every epoch.
--dry-run prints the plan and the expected training time without training.
Everything lands in OUT/ (checkpoints/<run>/, result.h5, figures/). Re-running skips
finished runs and analyses, so an interrupted experiment continues where it stopped.

examples:
  landscape experiment late-sam --threads 1                       \
# digits, 300 epochs, 4 seeds (see below)
  landscape experiment late-sam --config configs/late-sam-cifar10-resnet20.toml --device cuda
  landscape experiment late-sam --config configs/late-sam-digits-quick.toml   \
# 60 epochs: few SAM steps
  landscape experiment late-sam --config configs/late-sam-label-noise.toml --threads 1 \
# MNIST-1D, 20 % noisy labels: where SAM's accuracy gain resolves
  landscape experiment late-sam --config configs/late-sam-cifar10-wrn16-8.toml --dry-run
  landscape experiment late-sam --dataset mnist1d --arch cnn1d --epochs 40 --batch-size 128

time: the digits default took 15-22 min of training and about 3.5 min of analyses per seed
(measured on one thread of a 2-core CPU shared with other jobs, load average 8-10).
"""


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from exc
    return values


def optional_positive_int(text: str) -> int | None:
    return None if str(text).lower() in ("none", "all", "") else positive_int(text)


# flag type and help for each LateSamConfig field (defaults shown come from the dataclass)
FIELDS = {
    "name": (str, "result group name under experiment/"),
    "dataset": (str, "digits, mnist1d, cifar10 or cifar100"),
    "arch": (str, "architecture (registry name)"),
    "epochs": (positive_int, "epochs of every run"),
    "batch_size": (positive_int, "training batch size"),
    "lr": (positive_float, "initial learning rate"),
    "momentum": (nonnegative_float, "SGD momentum"),
    "weight_decay": (nonnegative_float, "weight decay"),
    "schedule": (str, "learning-rate schedule: step, cosine or constant"),
    "milestones": (
        int_list,
        "epochs at which a step schedule multiplies lr by gamma (default: half-way)",
    ),
    "gamma": (positive_float, "step-schedule factor"),
    "rho": (nonnegative_float, "SAM radius"),
    "augment": (str, "training augmentation: default, none, crop-flip, crop-flip-cutout"),
    "dtype": (str, "float32 or float64"),
    "data_dir": (str, "folder holding the CIFAR files"),
    "momentum_across_switch": (str, "keep or reset the momentum at a SGD/SAM switch"),
    "label_noise": (
        nonnegative_float,
        "fraction of training labels replaced by another class (test labels stay clean)",
    ),
    "label_noise_seed": (int, "seed of the noisy labels, the same for every seed"),
    "switch_epochs": (
        int_list,
        "late-SAM arms: epochs t0 at which SAM starts, comma-separated "
        "(default: 1/2, 3/4, 9/10 of --epochs)",
    ),
    "full_sam": (None, "train the full-SAM arm"),
    "sam_sgd_epochs": (
        int_list,
        "SAM->SGD arms: epochs t1 at which SAM stops, comma-separated "
        "(default: half of --epochs; '' for none)",
    ),
    "seeds": (int_list, "seeds (comma-separated)"),
    "samples": (positive_int, "training examples of the analyses"),
    "analysis_batch_size": (
        positive_int,
        "batch size of the analyses (default: measured, and 512 "
        "where batches define BatchNorm statistics)",
    ),
    "bn_mode": (str, "BatchNorm statistics in the analyses: eval or train"),
    "eig_tol": (positive_float, "relative residual of the top eigenvalue"),
    "trace_rel_stderr": (positive_float, "relative standard error of the trace"),
    "trace_max_hvps": (positive_int, "most Hessian-vector products per trace"),
    "sharpness_rho": (
        float_list,
        "radii of worst-case sharpness, comma-separated (default: rho/2, rho, 2 rho)",
    ),
    "sharpness_steps": (positive_int, "ascent steps of worst-case sharpness"),
    "sharpness_m": (optional_positive_int, "m of m-sharpness (default: all samples at once)"),
    "interpolation_points": (positive_int, "points on each interpolation path"),
    "escape": (None, "run the escape curve"),
    "escape_steps": (positive_int, "SAM steps of the escape curve"),
    "escape_lr": (
        positive_float,
        "learning rate of the escape curve (default: the schedule's at the latest t0)",
    ),
    "escape_rho": (nonnegative_float, "SAM radius of the escape curve (default: --rho)"),
    "escape_eig_every": (positive_int, "top eigenvalue every K escape steps"),
    "escape_momentum": (nonnegative_float, "momentum of the escape curve (default: --momentum)"),
    "escape_bn_mode": (
        str,
        "BatchNorm in the escape curve: auto (as in training: batch statistics "
        "if the model has BatchNorm), eval or train",
    ),
    "escape_weight_decay": (
        nonnegative_float,
        "weight decay of the escape curve (default: --weight-decay)",
    ),
    "escape_divergence_factor": (
        positive_float,
        "the escape counts as diverged (stored as diverged_at, "
        "no growth rate) when its loss exceeds this x max(start "
        "loss, 0.01) or is not finite",
    ),
}


# Flags with a fixed set of values: argparse shows and checks them (also for --config keys).
CHOICES = {
    "dataset": ["digits", "mnist1d", "cifar10", "cifar100"],
    "schedule": ["step", "cosine", "constant"],
    "augment": ["default", "none", "crop-flip", "crop-flip-cutout"],
    "dtype": ["float32", "float64"],
    "momentum_across_switch": ["keep", "reset"],
    "bn_mode": ["eval", "train"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from landscape.experiment.config import LateSamConfig
    from landscape.experiment.rules import rules_text

    parser.epilog = (
        "verdicts: the command ends with one line per claim of the paper, each decided by "
        "its rule\n(landscape/experiment/rules.py; docs/experiment.md):\n" + rules_text()
    )

    parser.add_argument("experiment", choices=["late-sam"], help="which experiment (late-sam)")
    defaults = LateSamConfig().to_dict()
    group = parser.add_argument_group("experiment options (also as keys of --config FILE.toml)")
    for name, (kind, text) in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        if kind is None:
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{text} (default: {'yes' if default else 'no'})",
            )
        else:
            suffix = "" if default is None else f" (default: {shown})"
            group.add_argument(
                flag, type=kind, default=None, choices=CHOICES.get(name), help=text + suffix
            )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="experiment folder (default: experiments/<name>-<dataset>-<arch>)",
    )
    parser.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="render the figures with `landscape plot` at the end (default: yes)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (runs per arm, epochs, SAM steps) and the expected training time "
        "from a few SGD steps measured now on --device, then exit without training",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is fastest for the "
        "small models, and lets two experiments share a 2-core machine)",
    )
    add_device(parser)
    add_config(parser)


def config_from_args(args: argparse.Namespace):
    from landscape.experiment.config import LateSamConfig

    given = {name: getattr(args, name) for name in FIELDS if getattr(args, name, None) is not None}
    known = {f.name for f in dataclasses.fields(LateSamConfig)}
    return LateSamConfig(**{k: v for k, v in given.items() if k in known})


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from landscape.devices import resolve_device
    from landscape.experiment.late_sam import run_late_sam

    log = logging.getLogger("landscape.experiment")
    config = config_from_args(args).validate()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.dry_run:
        print(dry_run(config, str(device)))
        return 0
    root = Path(args.out or f"experiments/{config.name}-{config.dataset}-{config.arch}")
    outcome = run_late_sam(config, root, device=device, command=["landscape", *sys.argv[1:]])
    print(outcome.table)
    print(f"wrote {outcome.result_path}")
    if args.figures:
        from landscape.cli import main as cli_main

        code = cli_main(["plot", str(outcome.result_path), "--out", str(root / "figures")])
        if code != 0:
            log.warning("figures could not be rendered (landscape plot exited %d)", code)
    return 0


def dry_run(config, device: str) -> str:
    """The plan of ``config`` with a per-step time measured now on ``device``."""
    import torch

    from landscape.experiment.estimate import DATASET_SHAPES, format_plan, measure_step_seconds

    if config.dataset in DATASET_SHAPES:
        examples, shape, classes = DATASET_SHAPES[config.dataset]
    else:
        from landscape.data import load_dataset

        data = load_dataset(config.dataset, config.data_dir)
        examples, shape, classes = data.train_x.shape[0], data.input_shape, data.num_classes
    steps = 3
    seconds = measure_step_seconds(config.arch, shape, classes, config.batch_size, device, steps)
    basis = (
        f" (median of {steps} steps of batch {config.batch_size} on random inputs, {device}, "
        f"{torch.get_num_threads()} thread(s), measured now; optimizer steps only: the "
        "per-epoch test evaluation, augmentation and checkpoints come on top)"
    )
    return format_plan(config, examples, seconds, basis)
