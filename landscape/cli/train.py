"""landscape train: SGD -> SAM trajectories with resumable checkpoints."""

from __future__ import annotations

import argparse

from landscape.cli import common

HELP = "train a model with SGD, switching to SAM for the last epochs; resumable checkpoints"
DESCRIPTION = """\
Train with SGD (momentum, weight decay, step or cosine learning rate) and switch to SAM
(Foret et al. 2021; --adaptive for ASAM, Kwon et al. 2021) at --sam-start, optionally back
to SGD at --sam-end. With no arguments: the offline digits run (cnn-bn, 60 epochs, SAM from
epoch 45), about 10 s on 2 CPU cores (9-13 s measured).

Writes <out>/<run>/epoch-XXX-<phase>.pt (every --save-every epochs, at the last epoch before
each switch, and at the end), metrics.jsonl (one JSON line per epoch) and config.json.
Running the same command again continues the run from its newest checkpoint.

examples:
  landscape train                                       # digits, SGD then SAM
  landscape train --config configs/cifar10-resnet20.toml --data-dir data
  landscape train --epochs 160 --sam-start never --save-every 10 --run trunk --dataset cifar10
  landscape train --from checkpoints/trunk/epoch-120-sgd.pt --sam-start 120 --run branch120
  landscape train --run trunk --resume                  # after a crash or a kill

On several processes (DistributedDataParallel; Gloo on CPU, NCCL on CUDA, each rank on
cuda:LOCAL_RANK): --batch-size stays the global batch, split evenly over the ranks; rank 0
writes the files. Rerun the same command after a crash to resume.
  torchrun --nproc_per_node=4 -m landscape train --device cuda --batch-size 512 --sync-bn
"""

# Flags that make up the run config (landscape.train.TrainConfig); None means "not given", so a
# --from branch or --resume inherits the stored value and a fresh run gets the built-in default.
CONFIG_FLAGS = (
    "dataset",
    "arch",
    "arch_kwargs",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "nesterov",
    "schedule",
    "milestones",
    "gamma",
    "sam_start",
    "sam_end",
    "rho",
    "adaptive",
    "sam_ascent",
    "sync_bn",
    "momentum_across_switch",
    "label_smoothing",
    "label_noise",
    "label_noise_seed",
    "augment",
    "seed",
    "dtype",
    "save_every",
    "data_dir",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_config(parser)
    run = parser.add_argument_group("run")
    common.add_out(run, "checkpoints root; the run folder is <out>/<run> (default: checkpoints)")
    run.add_argument(
        "--run",
        "--run-name",  # torchrun's own parser takes --run for an abbreviation of its --run-path
        dest="run",
        metavar="NAME",
        help="run folder name (default: from the config, e.g. digits-cnn-bn-sam45-s0); "
        "write --run-name under torchrun",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its newest checkpoint, with its stored config",
    )
    run.add_argument(
        "--from",
        dest="from_checkpoint",
        metavar="CKPT",
        help="start a new run from another run's checkpoint, continuing its epochs, schedule "
        "and momentum",
    )
    run.add_argument(
        "--save-every",
        type=common.nonnegative_int,
        metavar="N",
        help="checkpoint every N epochs (0: only before switches and at the end; default: 5)",
    )
    common.add_device(run)
    common.add_seed(run)
    common.add_dtype(run)
    parser.set_defaults(
        seed=None, dtype=None
    )  # None: inherit from --from/--resume, else the default
    run.add_argument(
        "--threads",
        type=common.positive_int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is fastest for the small models)",
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only when stderr is a terminal; else a log line per epoch)",
    )

    data = parser.add_argument_group("data and model")
    data.add_argument(
        "--dataset",
        choices=["digits", "mnist1d", "cifar10", "cifar100"],
        help="dataset (default: digits)",
    )
    data.add_argument(
        "--data-dir", metavar="DIR", help="folder holding the CIFAR files (default: ./data)"
    )
    data.add_argument(
        "--download", action="store_true", help="download CIFAR into --data-dir if it is missing"
    )
    data.add_argument(
        "--arch",
        help="architecture: mlp, mlp-bn, cnn, cnn-bn, resnet20/32/56, vgg11-bn, vgg16-bn, "
        "wrn16-8, wrn28-10, or timm:NAME (default: cnn-bn)",
    )
    data.add_argument(
        "--arch-kwargs",
        metavar="JSON",
        help='keyword arguments of --arch timm:NAME, e.g. \'{"img_size": 32, "patch_size": 4}\'',
    )
    data.add_argument(
        "--augment",
        choices=["default", "none", "crop-flip", "crop-flip-cutout"],
        help="training augmentation (default: the dataset's: none for digits, crop-flip for CIFAR)",
    )

    sgd = parser.add_argument_group("optimizer and schedule")
    sgd.add_argument("--epochs", type=common.positive_int, help="epochs in total (default: 60)")
    sgd.add_argument(
        "--batch-size",
        type=common.positive_int,
        help="global mini-batch size: under torchrun each of N ranks takes batch-size / N "
        "(default: 128)",
    )
    sgd.add_argument("--lr", type=float, help="initial learning rate (default: 0.1)")
    sgd.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    sgd.add_argument(
        "--nesterov",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Nesterov momentum (default: off)",
    )
    sgd.add_argument("--weight-decay", type=float, help="L2 weight decay (default: 5e-4)")
    sgd.add_argument(
        "--schedule",
        choices=["step", "cosine", "constant"],
        help="learning-rate schedule (default: step: lr times --gamma at each milestone)",
    )
    sgd.add_argument(
        "--milestones",
        metavar="E1,E2",
        help="epochs of the step schedule's drops (default: half the epochs)",
    )
    sgd.add_argument("--gamma", type=float, help="factor of each step drop (default: 0.1)")
    sgd.add_argument(
        "--label-smoothing", type=float, help="label smoothing of the cross-entropy (default: 0)"
    )
    sgd.add_argument(
        "--label-noise",
        type=float,
        metavar="FRACTION",
        help="replace this fraction of the training labels by another class, drawn at random "
        "with --label-noise-seed; test labels stay clean (default: 0)",
    )
    sgd.add_argument(
        "--label-noise-seed",
        type=int,
        metavar="SEED",
        help="seed of the noisy labels, the same for every --seed (default: 0)",
    )

    sam = parser.add_argument_group("SAM")
    sam.add_argument(
        "--sam-start",
        metavar="EPOCH",
        help="switch SGD -> SAM after this many epochs; 'never' for pure SGD, 0 for SAM throughout "
        "(default: 'auto' = the last quarter of the epochs)",
    )
    sam.add_argument(
        "--sam-end",
        metavar="EPOCH",
        help="switch SAM -> SGD after this many epochs (default: never)",
    )
    sam.add_argument("--rho", type=float, help="radius of SAM's neighbourhood (default: 0.05)")
    sam.add_argument(
        "--adaptive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ASAM: neighbourhood scaled by |w| (Kwon et al. 2021; default: off)",
    )
    sam.add_argument(
        "--sam-ascent",
        choices=["global", "per-rank"],
        help="under torchrun, the ascent gradient: global = all-reduced over the global batch "
        "(N ranks x B = one process with N*B); per-rank = each rank's own (m-sharpness with m = "
        "B, as Foret et al. trained; no gradient sync on the ascent pass) (default: global)",
    )
    data.add_argument(
        "--sync-bn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="under torchrun, BatchNorm statistics over the global batch (torch's SyncBatchNorm "
        "on CUDA, landscape's on CPU) (default: off: each rank normalises with its share's)",
    )
    sam.add_argument(
        "--momentum-across-switch",
        choices=["keep", "reset"],
        help="keep the SGD momentum buffer when the phase switches, or reset it to zero "
        "(default: keep: the optimizer state carries over, as when SAM wraps the same SGD)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    from landscape.errors import UserError
    from landscape.train import run_files
    from landscape.train.config import resolve_config

    overrides = {key: getattr(args, key) for key in CONFIG_FLAGS}
    out_root = Path(args.out) if args.out else Path("checkpoints")
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"--out {out_root} is a file; give a folder for the run folders")

    base = None
    from_path = None
    if args.from_checkpoint:
        if args.resume:
            raise UserError(
                "--from starts a new run and --resume continues one: give only one of them"
            )
        from_path = Path(args.from_checkpoint)
        if not from_path.is_file():
            raise UserError(f"--from {from_path}: no such checkpoint file")
        source = run_files.load_run_checkpoint(from_path)
        base = source["config"]
    config = resolve_config(overrides, base)
    if from_path is not None:
        config.from_checkpoint = str(from_path.resolve())
        config.from_epoch = int(source["epoch"])
    if args.run is not None:
        run_files.check_run_name(args.run)
    run_dir = out_root / (args.run or run_files.check_run_name(config.run_name(), given=False))
    if args.resume:
        stored = run_files.read_config_file(run_dir)
        if stored is None:
            existing = run_files.list_checkpoints(run_dir)
            if not existing:
                raise UserError(
                    f"nothing to resume: {run_dir} holds no checkpoint (check --run and --out)"
                )
            stored = run_files.load_run_checkpoint(existing[-1])["config"]
        config = resolve_config(overrides, base=stored)

    return _train(config, run_dir, args, from_path)


def _train(config, run_dir, args: argparse.Namespace, from_path) -> int:
    import logging

    from landscape import distributed
    from landscape.data import load_dataset
    from landscape.devices import resolve_device
    from landscape.train.config import check_world_size
    from landscape.train.loop import train
    from landscape.train.run_files import METRICS_FILE, load_run_checkpoint

    device = distributed.rank_device(resolve_device(args.device))
    partition = distributed.partition_from_environment(device)
    check_world_size(config, partition.world_size)
    if not partition.is_writer:  # rank 0 reports; the others only print their errors
        logging.getLogger("landscape").setLevel(logging.WARNING)
    data = load_dataset(config.dataset, config.data_dir, download=args.download)
    ranks = f", {partition.world_size} ranks ({partition.backend})" * partition.is_distributed
    logging.getLogger("landscape.train").info(
        "training %s on %s (%s%s) into %s", config.arch, config.dataset, device, ranks, run_dir
    )
    paths = train(
        config,
        run_dir,
        device=device,
        resume=args.resume,
        from_checkpoint=from_path,
        data=data,
        progress=args.progress,
        partition=partition,
    )
    distributed.shutdown()
    if not partition.is_writer:
        return 0
    final = load_run_checkpoint(paths[-1])
    last = final["history"][-1]
    switch = (
        "sgd only"
        if config.sam_start is None
        else f"sgd -> {config.optimizer_name} at epoch {config.sam_start}"
    )
    if config.sam_end is not None:
        switch += f" -> sgd at epoch {config.sam_end}"
    if partition.is_distributed:
        switch += f"; {partition.world_size} ranks ({partition.backend})"
        switch += ", per-rank ascent" * (config.sam_ascent == "per-rank")
        switch += ", synchronised BatchNorm" * config.sync_bn
    print(f"run {run_dir}: {config.arch} on {config.dataset}, {config.epochs} epochs, {switch}")
    print(
        f"epoch {last['epoch']} ({last['phase']}): train loss {last['train_loss']:.4f} "
        f"acc {last['train_acc']:.2%}, test loss {last['test_loss']:.4f} acc {last['test_acc']:.2%}"
    )
    print("checkpoints:")
    for path in paths:
        print(f"  {path}")
    print(f"metrics: {run_dir / METRICS_FILE}")
    return 0
