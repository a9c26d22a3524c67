"""The training loop: SGD with momentum that switches to SAM (and optionally back).

Data lives on the device as tensors; every mini-batch is cut from a seeded permutation
and augmented as a whole batch (no DataLoader, no worker processes), as in
KellerJordan/cifar10-airbench. Everything random comes from two CPU ``torch.Generator``s
(shuffling, augmentation) whose states go into every checkpoint, so a resumed run
repeats exactly what the uninterrupted run would have done: on CPU the final weights
are bit-identical.

Under torchrun (a :class:`~landscape.parallel.Partition` of N ranks) the model is wrapped in
DistributedDataParallel and ``batch_size`` is the *global* batch: every rank draws the same
global batch from the same generators, augments it, and keeps its contiguous share
(:meth:`Partition.example_range`), so the data order depends on the seed and the epoch only and
N ranks x batch B compute what one process computes with batch N*B. Rank 0 alone writes.
"""

from __future__ import annotations

import errno
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape import interrupt
from landscape.atomic import WriteError, write_error
from landscape.bn import BN_TYPES
from landscape.data import Data, augment_batch, batches, load_dataset, with_label_noise
from landscape.devices import make_deterministic, resolve_dtype, seed_everything
from landscape.errors import UserError
from landscape.evaluate import evaluate_sums
from landscape.loading.checkpoint import save_checkpoint
from landscape.losses import LossFn, make_loss
from landscape.models import build_model, canonical_name
from landscape.parallel import SINGLE, Partition
from landscape.train import run_files
from landscape.train.config import TrainConfig, check_branch_point, check_world_size
from landscape.train.sam import SAM, bn_stats_frozen
from landscape.train.schedule import SAM as SAM_PHASE
from landscape.train.schedule import is_save_epoch, learning_rate, phase

log = logging.getLogger("landscape.train")

EVAL_BATCH_SIZE = 1000
# Seeds of the loop's generators are derived from the run seed; the offset keeps the
# augmentation stream apart from the shuffling stream.
AUGMENT_SEED_OFFSET = 7919


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    examples: int


@dataclass
class Trainer:
    """Model, optimizers and random generators of one run; the state a checkpoint holds."""

    config: TrainConfig
    model: nn.Module
    optimizer: torch.optim.SGD
    sam: SAM
    loss_fn: LossFn
    generators: dict[str, torch.Generator]
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0  # epochs completed
    partition: Partition = SINGLE
    # What the training steps call: the model itself, or its DistributedDataParallel wrapper.
    forward: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.model

    def lr(self, epoch: int) -> float:
        c = self.config
        return learning_rate(
            epoch,
            lr=c.lr,
            schedule=c.schedule,
            epochs=c.epochs,
            milestones=c.milestones,
            gamma=c.gamma,
        )

    def phase(self, epoch: int) -> str:
        return phase(epoch, self.config.sam_start, self.config.sam_end)

    def scheduler_state(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": c.schedule,
            "base_lr": c.lr,
            "milestones": list(c.milestones),
            "gamma": c.gamma,
            "epochs": c.epochs,
            "last_epoch": self.epoch,
            "lr": self.lr(max(self.epoch - 1, 0)),
        }

    def apply_hyperparameters(self, epoch: int) -> None:
        """The config's values in every parameter group (after loading an optimizer state, the
        stored groups would otherwise win) and the scheduled learning rate of ``epoch``."""
        c = self.config
        for group in self.optimizer.param_groups:
            group.update(
                lr=self.lr(epoch),
                momentum=c.momentum,
                weight_decay=c.weight_decay,
                nesterov=c.nesterov,
                rho=c.rho,
                adaptive=c.adaptive,
            )


def build_trainer(
    config: TrainConfig, data: Data, device: torch.device, partition: Partition = SINGLE
) -> Trainer:
    """A freshly initialised run (model weights from ``config.seed``, the same on every rank)."""
    seed_everything(config.seed)
    dtype = resolve_dtype(config.dtype)
    model = _build_model(config, data).to(device=device, dtype=dtype)
    forward = model
    if partition.is_distributed:
        model, forward = _distributed_model(model, config, device, partition)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
    sam = SAM(optimizer, rho=config.rho, adaptive=config.adaptive)
    generators = seeded_generators(config.seed)
    loss_fn = make_loss("cross-entropy", label_smoothing=config.label_smoothing)
    return Trainer(
        config, model, optimizer, sam, loss_fn, generators, partition=partition, forward=forward
    )


def _distributed_model(
    model: nn.Module, config: TrainConfig, device: torch.device, partition: Partition
) -> tuple[nn.Module, nn.Module]:
    """``(model, its DistributedDataParallel wrapper)``; with ``sync_bn`` the BatchNorm layers
    first become torch's SyncBatchNorm (CUDA) or :class:`~landscape.train.sync_bn.GlobalBatchNorm`.

    Buffers are not synchronised at every forward (``forward_sync_buffers=False``): with per-rank
    BatchNorm each rank tracks running statistics of its own shares, and
    :func:`average_bn_statistics` merges them once per epoch, before evaluating and saving.
    """
    from torch.nn.parallel import DistributedDataParallel

    group = getattr(partition, "group", None)
    if config.sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group=group)
    elif config.sync_bn:  # torch's SyncBatchNorm has no CPU kernel
        from landscape.train import sync_bn

        model = sync_bn.convert(model, process_group=group)
    wrapper = DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        forward_sync_buffers=False,
        process_group=group,
    )
    return model, wrapper


@torch.no_grad()
def average_bn_statistics(model: nn.Module, partition: Partition) -> None:
    """Running mean and variance of every BatchNorm layer averaged over the ranks (each rank
    tracked those of its own shares), so that all ranks evaluate and save one model."""
    if not partition.is_distributed:
        return
    for module in model.modules():
        if isinstance(module, BN_TYPES) and module.track_running_stats:
            for buffer in (module.running_mean, module.running_var):
                if buffer is not None:
                    partition.sum_(buffer).div_(partition.world_size)


def _build_model(config: TrainConfig, data: Data) -> torch.nn.Module:
    """A registry model, or ``timm:NAME`` with ``config.arch_kwargs``
    (landscape.loading.architecture)."""
    if config.arch.startswith("timm:"):
        from landscape.loading.architecture import build_architecture

        return build_architecture(
            config.arch,
            input_shape=tuple(data.input_shape),
            num_classes=data.num_classes,
            kwargs=config.arch_kwargs,
            explicit_num_classes=True,
        )
    return build_model(config.arch, data.input_shape, data.num_classes)


def seeded_generators(seed: int) -> dict[str, torch.Generator]:
    return {
        "shuffle": torch.Generator().manual_seed(seed),
        "augment": torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET),
    }


def train_epoch(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    augmentation: str,
    optimizer: torch.optim.Optimizer,
    sam: SAM | None,
    generators: dict[str, torch.Generator],
    on_step: Any = None,
    partition: Partition = SINGLE,
    sam_ascent: str = "global",
) -> EpochStats:
    """One pass over the data: shuffled, augmented batches; a plain optimizer step, or a SAM
    step when ``sam`` is given (its second forward/backward leaves BatchNorm statistics alone).

    With a distributed ``partition``, ``model`` is the DistributedDataParallel wrapper and
    ``batch_size`` the global batch: each rank computes on its share of every global batch,
    weighted so that the all-reduced gradient is that of the mean over the whole batch (an
    uneven last batch included). SAM's ascent (Foret et al. 2021) uses that all-reduced
    gradient (``sam_ascent="global"``: N ranks x B = one process with N*B), or each rank's own
    (``"per-rank"``: the first backward runs under ``no_sync()``, each rank climbs to its own
    w + e_r, and the descent gradient is the all-reduced mean of grad L_r(w + e_r): m-sharpness
    with m = B, as Foret et al. trained).

    Loss and accuracy are of the first forward pass of each batch (at w, in training mode),
    accumulated on the device: one host synchronisation (and one all-reduce) per epoch.
    """
    model.train()
    sums = torch.zeros(3, dtype=torch.float64, device=inputs.device)  # loss, correct, examples
    n = inputs.shape[0]
    world = partition.world_size
    drop_last = _drops_last_batch(n, batch_size, world)
    local_ascent = sam is not None and sam_ascent == "per-rank" and partition.is_distributed
    for x, y in batches(
        inputs,
        targets,
        batch_size,
        shuffle=True,
        generator=generators["shuffle"],
        drop_last=drop_last,
    ):
        # The whole global batch is augmented on every rank (same generator, same draws), then
        # cut: the augmentation does not depend on the number of ranks.
        x = augment_batch(x, augmentation, generators["augment"])
        share = partition.example_range(x.shape[0])
        # DDP averages the ranks' gradients; this weight turns that average into the mean over
        # the global batch when the shares differ in size (1.0 when they are equal).
        weight = len(share) * world / x.shape[0]
        x, y = x[share.start : share.stop], y[share.start : share.stop]
        optimizer.zero_grad(set_to_none=True)
        with model.no_sync() if local_ascent else nullcontext():
            outputs = model(x)
            loss = loss_fn(outputs, y)
            (loss if local_ascent or world == 1 else loss * weight).backward()
        if sam is None:
            optimizer.step()
        else:
            sam.first_step(zero_grad=True)
            with bn_stats_frozen(model):
                second = loss_fn(model(x), y)
                (second if world == 1 else second * weight).backward()
            sam.second_step(zero_grad=False)
        with torch.no_grad():
            sums[0] += loss.detach().double() * x.shape[0]
            sums[1] += (outputs.argmax(dim=-1) == y).sum()
            sums[2] += x.shape[0]
        if on_step is not None:
            on_step()
    loss_sum, correct, seen = partition.sum_(sums).tolist()
    return EpochStats(loss_sum / seen, correct / seen, int(seen))


def _drops_last_batch(examples: int, batch_size: int, world_size: int = 1) -> bool:
    """Whether the last, partial global batch is dropped: when a rank's share of it would be
    a single example (or none), which breaks BatchNorm in training mode."""
    rest = examples % batch_size
    return 0 < rest < 2 * world_size


def _reporter(progress: bool | None):
    """``progress=True``: a bar; ``None``: a bar on a terminal; else plain progress lines
    (shown when the ``landscape.progress`` logger is on, as in the CLI without ``-q``)."""
    from landscape.progress import Reporter, cli_reporter

    return Reporter(True, bar=True) if progress else cli_reporter(bar=progress)


def steps_per_epoch(examples: int, batch_size: int, world_size: int = 1) -> int:
    full, rest = divmod(examples, batch_size)
    return full + (1 if rest and not _drops_last_batch(examples, batch_size, world_size) else 0)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    resume: bool = False,
    from_checkpoint: str | Path | None = None,
    data: Data | None = None,
    progress: bool | None = None,
    partition: Partition = SINGLE,
) -> list[Path]:
    """Train ``config`` into ``run_dir``; returns the run's checkpoint paths, oldest first.

    - A run folder that already holds checkpoints of the same config is continued from its
      newest checkpoint (``resume=True`` insists on that). A different config is refused.
    - ``from_checkpoint``: start from another run's checkpoint, continuing its epoch count,
      learning-rate schedule, optimizer state (momentum) and random streams; its history is
      copied so the branch's metrics tell the whole trajectory.
    - ``data``: the dataset (default: ``load_dataset(config.dataset, config.data_dir)``), clean:
      ``config.label_noise`` is applied here (:func:`landscape.data.with_label_noise`).
    - ``progress``: a tqdm bar (None: when stderr is a terminal); otherwise a progress line
      (steps done of all, ETA) every few seconds and one log line per epoch.
    - ``partition``: this rank's share under torch.distributed (``landscape.distributed``);
      every rank calls ``train`` with the same arguments, rank 0 alone writes and reports.
      ``config.batch_size`` is the global batch and must be divisible by the world size.
    """
    run_dir = Path(run_dir)
    device = torch.device(device)
    config = TrainConfig.from_dict(config.to_dict())  # our own copy: augmentation gets resolved
    config.world_size = partition.world_size
    config.backend = partition.backend or "none"
    check_world_size(config, partition.world_size)
    if not config.arch.startswith("timm:"):
        config.arch = canonical_name(config.arch)
    if data is None:
        data = load_dataset(config.dataset, config.data_dir)
    data = with_label_noise(data, config.label_noise, config.label_noise_seed)
    if config.augment == "default":
        config.augment = data.augmentation

    # Rank 0's view of the run folder decides for every rank: a rank that looked a moment later
    # could otherwise find a checkpoint that rank 0 has just written.
    listed = [str(p) for p in run_files.list_checkpoints(run_dir)]
    existing = [Path(p) for p in partition.broadcast(listed)]
    stored = run_files.read_config_file(run_dir)
    if stored is None and existing:  # a folder from before config.json, or one copied by hand
        stored = run_files.load_run_checkpoint(existing[-1])["config"]
    source = None
    if from_checkpoint is not None:
        source = run_files.load_run_checkpoint(Path(from_checkpoint))
        config.from_checkpoint = str(Path(from_checkpoint).resolve())
        config.from_epoch = int(source["epoch"])
        check_branch_point(config, source["history"], config.from_epoch, Path(from_checkpoint))
    if stored is not None:
        differences = config.differences(TrainConfig.from_dict(stored))
        if differences == ["world_size"]:
            ranks = TrainConfig.from_dict(stored).world_size
            launch = f"torchrun --nproc_per_node={ranks}" if ranks > 1 else "one process"
            raise UserError(
                f"run folder {run_dir} holds a run on {ranks} rank(s), "
                f"this is {config.world_size}: continue it with {launch} "
                "(the ranks shape its trajectory), or choose another --run or --out"
            )
        if differences:
            detail = ", ".join(
                f"{k}: {stored.get(k)!r} there, {getattr(config, k)!r} now" for k in differences[:3]
            )
            raise UserError(
                f"run folder {run_dir} holds a run with a different config ({detail}); "
                "choose another --run or --out, or repeat the original flags to continue it"
            )
    if resume and not existing:
        raise UserError(
            f"nothing to resume: {run_dir} holds no checkpoint; start the run without --resume"
        )

    data = data.to(device)
    dtype = resolve_dtype(config.dtype)
    train_x, train_y = data.train_x.to(dtype), data.train_y
    test_x, test_y = data.test_x.to(dtype), data.test_y
    make_deterministic(device)
    trainer = build_trainer(config, data, device, partition)

    if existing:
        checkpoint = run_files.load_run_checkpoint(existing[-1])
        _restore(trainer, checkpoint)
        if partition.is_writer:
            log.info("resuming %s from %s", run_dir, existing[-1].name)
    elif source is not None:
        _restore(trainer, source)
        trainer.history = [dict(r) for r in source["history"] if int(r["epoch"]) <= trainer.epoch]
        if config.seed != int(source["config"].get("seed", config.seed)):
            # A branch with its own seed: new data order and augmentation from here on.
            for key, generator in seeded_generators(config.seed).items():
                trainer.generators[key].set_state(generator.get_state())
        if partition.is_writer:
            log.info("branching from %s at epoch %d", from_checkpoint, trainer.epoch)

    if partition.is_writer:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only --out, say: one line naming the folder
            raise write_error(exc, Path(exc.filename or run_dir), 0) from None
        run_files.remove_partial_files(run_dir)
        if stored is None:
            run_files.write_config_file(run_dir, config.to_dict())
        run_files.rewrite_metrics(run_dir, trainer.history)

    if trainer.epoch >= config.epochs:
        if partition.is_writer:
            log.info("%s is complete (%d epochs)", run_dir, trainer.epoch)
        return existing

    steps = steps_per_epoch(train_x.shape[0], config.batch_size, partition.world_size)
    saved = _Saved(run_dir, trainer.epoch, config.epochs, writes=partition.is_writer)
    reporter = _reporter(progress) if partition.is_writer else _silent_reporter()
    with reporter.phase(
        "train", config.epochs * steps, unit="steps", initial=trainer.epoch * steps
    ) as phase:
        try:
            while trainer.epoch < config.epochs:
                _run_one_epoch(trainer, run_dir, train_x, train_y, test_x, test_y, phase, saved)
        except interrupt.Interrupted:
            # A stop signal mid-epoch: the epoch under way is dropped (its data order and random
            # streams cannot be resumed half-way), the last finished one is saved if it is not yet.
            if saved.pending is not None:
                saved.write(saved.pending)
            raise
    partition.barrier()  # the writer's last checkpoint is on disk before any rank returns
    return run_files.list_checkpoints(run_dir)


def _silent_reporter():
    from landscape.progress import Reporter

    return Reporter(False)


class _Saved:
    """Which epoch is on disk: for the stop message, and for what a failed save loses."""

    def __init__(self, run_dir: Path, epoch: int, epochs: int, writes: bool = True) -> None:
        self.run_dir, self.epoch, self.epochs = run_dir, epoch, epochs
        self.writes = writes  # False on every rank but the writer: the epoch is only counted
        self.pending: dict[str, Any] | None = None  # a finished epoch's checkpoint, in memory only
        if epoch:
            interrupt.note_saved(f"{run_dir} up to epoch {epoch} of {epochs}")

    def write(self, payload: dict[str, Any]) -> Path:
        path = self.run_dir / run_files.checkpoint_name(payload["epoch"], payload["phase"])
        if not self.writes:  # rank 0 saves this epoch; the stop message of this rank says so
            self.epoch, self.pending = payload["epoch"], None
            interrupt.note_saved(f"{path} by rank 0 (epoch {self.epoch} of {self.epochs})")
            return path
        try:
            if not self.run_dir.is_dir():  # vanished mid-run: say so, do not start it afresh
                raise write_error(FileNotFoundError(errno.ENOENT, "gone"), path, 0)
            save_checkpoint(path, payload)
        except WriteError as exc:
            exc.lost = self.lost(payload["epoch"])
            raise
        self.epoch, self.pending = payload["epoch"], None
        interrupt.note_saved(f"{path} (epoch {self.epoch} of {self.epochs})")
        return path

    def lost(self, epoch: int) -> str:
        first = self.epoch + 1
        epochs = f"epoch {epoch}" if first >= epoch else f"epochs {first}-{epoch}"
        return (
            f"{epochs} finished since the last checkpoint (epoch {self.epoch}) could not be saved"
        )


def _run_one_epoch(
    trainer: Trainer, run_dir: Path, train_x, train_y, test_x, test_y, phase, saved: _Saved
) -> None:
    """One epoch; a checkpoint that is not due is kept in ``saved.pending`` for a stop signal."""
    config = trainer.config
    epoch = trainer.epoch
    current = trainer.phase(epoch)
    if (
        epoch > 0
        and current != trainer.phase(epoch - 1)
        and config.momentum_across_switch == "reset"
    ):
        trainer.optimizer.state.clear()  # start the new phase without the old momentum
    trainer.apply_hyperparameters(epoch)
    lr = trainer.lr(epoch)
    phase.advance(0, note=f"epoch {epoch + 1}/{config.epochs} {current}")

    start = time.perf_counter()
    stats = train_epoch(
        trainer.forward,
        trainer.loss_fn,
        train_x,
        train_y,
        batch_size=config.batch_size,
        augmentation=config.augment,
        optimizer=trainer.optimizer,
        sam=trainer.sam if current == SAM_PHASE else None,
        generators=trainer.generators,
        on_step=phase.advance,
        partition=trainer.partition,
        sam_ascent=config.sam_ascent,
    )
    average_bn_statistics(trainer.model, trainer.partition)
    trainer.model.eval()
    test_loss, test_acc = _evaluate(trainer, test_x, test_y)
    trainer.model.train()
    seconds = time.perf_counter() - start

    with interrupt.held():  # the epoch's record and checkpoint land together, or neither
        trainer.epoch = epoch + 1
        record = {
            "epoch": trainer.epoch,
            "phase": current,
            "lr": lr,
            "train_loss": stats.loss,
            "train_acc": stats.accuracy,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "seconds": round(seconds, 4),
        }
        trainer.history.append(record)
        if saved.writes:
            try:
                run_files.append_metrics(run_dir, record)
            except WriteError as exc:
                exc.lost = saved.lost(trainer.epoch)
                raise
            saved.pending = _checkpoint(trainer, current)
        if saved.writes and is_save_epoch(
            trainer.epoch,
            epochs=config.epochs,
            save_every=config.save_every,
            sam_start=config.sam_start,
            sam_end=config.sam_end,
        ):
            saved.write(saved.pending)

    message = (
        f"epoch {trainer.epoch}/{config.epochs} {current} lr {lr:.4g} "
        f"train loss {stats.loss:.4f} acc {stats.accuracy:.2%} "
        f"test loss {test_loss:.4f} acc {test_acc:.2%} ({seconds:.1f}s)"
    )
    phase.advance(
        0,
        estimate=stats.loss,
        name="train loss",
        note=f"epoch {trainer.epoch}/{config.epochs} {current}, test acc {test_acc:.1%}",
    )
    if phase.bar is None and saved.writes:  # on a terminal the bar shows it
        log.info(message)


def _evaluate(trainer: Trainer, test_x: torch.Tensor, test_y: torch.Tensor) -> tuple[float, float]:
    """Mean test loss and accuracy; each rank evaluates its share, the sums are all-reduced."""
    share = trainer.partition.example_range(test_x.shape[0])
    sums = evaluate_sums(
        trainer.model,
        test_x[share.start : share.stop],
        test_y[share.start : share.stop],
        trainer.loss_fn,
        EVAL_BATCH_SIZE,
    )
    loss, accuracy = (trainer.partition.sum_(sums) / test_x.shape[0]).tolist()
    return loss, accuracy


def _checkpoint(trainer: Trainer, current_phase: str) -> dict[str, Any]:
    return run_files.run_checkpoint_payload(
        arch=trainer.config.arch,
        model=trainer.model,
        epoch=trainer.epoch,
        phase=current_phase,
        config=trainer.config.to_dict(),
        optimizer=trainer.sam,
        scheduler=trainer.scheduler_state(),
        rng=run_files.capture_rng(trainer.generators),
        history=trainer.history,
    )


def _restore(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Weights, optimizer state, random streams and epoch count from a checkpoint."""
    try:
        trainer.model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        raise UserError(
            f"the checkpoint's weights do not fit {trainer.config.arch} "
            f"({str(exc).splitlines()[0]}); was it trained with another --arch or --dataset?"
        ) from exc
    trainer.sam.load_state_dict(checkpoint["optimizer"])
    run_files.restore_rng(checkpoint["rng"], trainer.generators)
    trainer.epoch = int(checkpoint["epoch"])
    trainer.history = [dict(r) for r in checkpoint["history"]]
