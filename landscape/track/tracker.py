"""``landscape.Tracker``: sharpness measured every few steps of the user's own training loop.

::

    tracker = landscape.Tracker(model, loss_fn, x, y, every=20, measures=("lambda1",),
                                optimizer=opt, out="track.h5", name="run1")
    for step in range(1, steps + 1):
        ...; opt.step()
        tracker.step(step)          # measures at steps 20, 40, 60, ...
    tracker.close()

Each measurement runs the engines of ``landscape hessian`` / ``landscape sharpness``
(:mod:`landscape.track.measures`, where the tolerances are stated) on examples fixed once, and
leaves the training exactly as it was (:mod:`landscape.track.preserve`): the same loop with and
without a tracker gives bit-identical weights. Every measurement is appended to
``track/<name>/`` of ``out`` at once (:mod:`landscape.results.track`, written through
:func:`landscape.store.transaction`), so a killed training keeps what was measured, and a
restarted one appends to it: a step measured again replaces the rows from that step on, so no
step is recorded twice.

Under ``torchrun`` every rank calls :meth:`Tracker.step` with the same examples; each sums over
its share (:class:`landscape.parallel.Partition`), every rank gets the same values, and only
the writer writes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape import store
from landscape.errors import UserError
from landscape.parallel import SINGLE, Partition
from landscape.results.provenance import Provenance
from landscape.results.track import TrackResult
from landscape.track.measures import TrackSettings, measure
from landscape.track.preserve import rng_preserved, training_preserved

log = logging.getLogger("landscape.track")


def _examples(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors ``x, y``, or every batch of an iterable of ``(x, y)`` pairs (a DataLoader) read
    once and concatenated; a shuffling loader's draws are undone (the training's generators
    are left as they were)."""
    if isinstance(x, torch.Tensor):
        if not isinstance(y, torch.Tensor):
            raise ValueError("give targets y with the inputs x, or a DataLoader of (x, y)")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} targets")
        return x, y
    if y is not None or not isinstance(x, Iterable):
        raise ValueError("x must be a tensor (with y) or an iterable of (x, y) batches")
    with rng_preserved():
        pairs = [(bx, by) for bx, by in x]
    if not pairs:
        raise ValueError("the data loader gave no batches")
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def _subset(x, y, samples: int | None, subset_seed: int):
    """``samples`` examples drawn by the rule of every command's ``--samples --subset-seed``
    (:func:`landscape.data.fixed_subset`: a generator of its own, so the training's random
    numbers are untouched); all of them when None."""
    from landscape.data import fixed_subset

    return fixed_subset(x, y, samples, subset_seed)


def _unwrapped(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (its forward would synchronise gradients)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def _default_partition() -> Partition:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from landscape.distributed import TorchPartition

        return TorchPartition.of_group()
    return SINGLE


def _learning_rate(optimizer: Any) -> float:
    lr = optimizer.param_groups[0].get("lr", math.nan)
    return float(lr.item() if isinstance(lr, torch.Tensor) else lr)


class Tracker:
    """Measure ``model`` every ``every`` training steps on fixed examples and append the values
    to ``track/<name>/`` of ``out``.

    Parameters
    ----------
    model, loss_fn:
        The model being trained (a DistributedDataParallel wrapper is looked through) and a
        loss ``(outputs, targets) -> mean over the batch``.
    x, y:
        The tracking examples (moved to the model's device), or ``x`` a DataLoader of
        ``(x, y)`` batches and ``y`` None: it is read once. Used whole unless ``samples`` is
        given: then that many are drawn (from ``subset_seed``), once, and kept.
    every:
        Measure at every step divisible by ``every`` (steps 20, 40, ... for 20).
    measures:
        Any of ``lambda1``, ``top-k`` (``k`` eigenvalues), ``trace``, ``worst-case`` (radius
        ``rho``), ``gradient-norm``, ``loss``; a tuple or a comma-separated string. Their
        tolerances: :mod:`landscape.track.measures`.
    optimizer:
        When given, its learning rate (first parameter group) is recorded at each measurement,
        for the 2/lr line of the plot (Cohen et al. 2021). It is only read.
    out, name:
        The HDF5 file and the group ``track/<name>``; ``out=None`` keeps the values in memory
        only (:attr:`result`).
    budget:
        None (default): exactly every ``every`` steps. A fraction such as 0.1: when one
        measurement costs more than that share of the training time since the last one, the
        next is postponed to the first multiple of ``every`` where it would not.
    bn_mode:
        ``"eval"`` (running statistics, as ``landscape hessian``) or ``"train"``.
    partition:
        This process's share under torchrun (default: from an initialised process group).
    tensorboard:
        A ``torch.utils.tensorboard.SummaryWriter`` (or a folder for a new one) the values are
        also written to, as ``landscape/<measure>``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn,
        x: Any = None,
        y: torch.Tensor | None = None,
        *,
        every: int = 100,
        measures: Sequence[str] | str = ("lambda1",),
        out: str | Path | None = "track.h5",
        name: str = "track",
        samples: int | None = None,
        subset_seed: int = 0,
        optimizer: Any = None,
        k: int = 3,
        tol: float = 1e-4,
        max_hvps: int | None = None,
        trace_rel_stderr: float = 0.05,
        trace_max_hvps: int = 500,
        rho: float = 0.05,
        worst_case_steps: int = 20,
        bn_mode: str = "eval",
        batch_size: int = 512,
        seed: int = 0,
        warm_start: bool = True,
        budget: float | None = None,
        partition: Partition | None = None,
        tensorboard: Any = None,
        loss_name: str | None = None,
    ) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        if budget is not None and not 0 < budget:
            raise ValueError("budget must be a positive fraction of the training time or None")
        self.settings = TrackSettings(
            measures=measures,
            k=k,
            tol=tol,
            max_hvps=max_hvps,
            trace_rel_stderr=trace_rel_stderr,
            trace_max_hvps=trace_max_hvps,
            rho=rho,
            worst_case_steps=worst_case_steps,
            bn_mode=bn_mode,
            batch_size=batch_size,
            seed=seed,
            warm_start=warm_start,
        )
        self.model = _unwrapped(model)
        self.loss_fn = loss_fn
        self.every, self.budget = int(every), budget
        self.optimizer = optimizer
        self.partition = partition or _default_partition()
        self.out = None if out is None else Path(out)
        self.name = store.safe_group_name(name)
        x, y = _examples(x, y)
        x, y = _subset(x, y, samples, subset_seed)
        device = next(self.model.parameters()).device
        self.x, self.y = x.to(device), y.to(device)
        parameters = {
            **self.settings.attributes(),
            "every": self.every,
            "budget": "" if budget is None else float(budget),
            "subset_seed": subset_seed,
        }
        dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        provenance = Provenance(
            checkpoint="",
            checkpoint_sha256="",
            arch=type(self.model).__name__,
            samples=int(self.x.shape[0]),
            bn_mode=bn_mode,
            dtype=dtype,
            seed=seed,
            seconds=0.0,
            config={"loss": loss_name or getattr(loss_fn, "__name__", type(loss_fn).__name__)},
            **self.partition.provenance(),
        )
        self.result = TrackResult(provenance=provenance, parameters=parameters)
        if self.out is not None and self.partition.is_writer:
            self._resume()
        self._ritz: dict | None = None
        self._claimed = False
        self._next = 0  # the earliest step the budget allows
        self._last_step: int | None = None  # the step and the end of the last measurement
        self._last_end = time.monotonic()
        self._count = 0
        self._owns_writer = tensorboard is not None and not hasattr(tensorboard, "add_scalar")
        self._tensorboard = self._summary_writer(tensorboard)

    # ------------------------------------------------------------------ file
    def _resume(self) -> None:
        """Continue ``track/<name>`` of ``out`` when it was recorded with the same measures."""
        store.check_output_path(self.out)
        if not self.out.exists():
            return
        with store.open_result_file(self.out) as f:
            group = f.get(f"track/{self.name}")
            if group is None:
                return
            old = TrackResult.read(group)
        wanted = self.result.parameters["requested"]
        if old.parameters.get("requested") != wanted:
            raise UserError(
                f"track/{self.name} in {self.out} holds measures "
                f"{old.parameters.get('requested')!r}, not {wanted!r}; give another name"
            )
        self.result.steps, self.result.series = old.steps, old.series
        self.result.provenance.seconds = old.provenance.seconds or 0.0
        log.info("continuing track/%s of %s after step %s", self.name, self.out, old.steps[-1:])

    def _save(self) -> None:
        if self.out is None or not self.partition.is_writer:
            return
        path = f"track/{self.name}"
        with store.transaction(self.out) as f:
            if self._claimed:
                store.owned_group(f, path)
            self.result.write(store.replace_group(f, path))
            store.claim_group(f, path)
        self._claimed = True

    @staticmethod
    def _summary_writer(tensorboard: Any):
        if tensorboard is None or hasattr(tensorboard, "add_scalar"):
            return tensorboard
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(tensorboard))

    # ---------------------------------------------------------------- steps
    def due(self, step: int) -> bool:
        """Whether :meth:`step` measures at ``step``."""
        return step % self.every == 0 and step >= self._next

    def step(self, step: int | None = None) -> dict[str, Any] | None:
        """Call after each optimizer step with the number of steps done (None: one more than
        the last call's). Measures when the step is due and returns the values (else None); a
        step just measured is not measured again (a framework that calls back after every
        micro-batch of an accumulated step passes the same step several times)."""
        step = self._count + 1 if step is None else int(step)
        self._count = step
        if step == self._last_step or not self.due(step):  # called twice for one step
            return None
        return self.measure(step)

    def measure(self, step: int) -> dict[str, Any]:
        """Measure now and record the values under ``step``, whatever the schedule."""
        started = time.monotonic()
        training = started - self._last_end
        with training_preserved(self.model):
            row, self._ritz = measure(
                self.model,
                self.loss_fn,
                self.x,
                self.y,
                self.settings,
                self._ritz,
                self.partition,
            )
        if self.optimizer is not None:
            row["lr"] = _learning_rate(self.optimizer)
        seconds = time.monotonic() - started
        row["seconds"] = seconds
        self.result.append(step, row)
        self.result.provenance.seconds = (self.result.provenance.seconds or 0.0) + seconds
        self._save()
        self._reschedule(step, seconds, training)
        if self._tensorboard is not None:
            for key, value in row.items():
                if key != "top_k":
                    self._tensorboard.add_scalar(f"landscape/{key}", float(value), step)
        self._last_step, self._last_end = step, time.monotonic()
        return row

    def _reschedule(self, step: int, cost: float, training: float) -> None:
        """With a budget: the next measurement waits until the training time since this one
        is at least ``cost / budget`` (at the pace of the steps since the last one)."""
        if self.budget is None:
            return
        done = step - (self._last_step or 0)
        per_step = training / max(done, 1)
        wanted = cost / self.budget
        steps = math.ceil(wanted / per_step) if per_step > 0 else self.every
        steps = self.every * max(1, math.ceil(steps / self.every))
        self._next = self.partition.broadcast(step + steps)

    def close(self) -> None:
        """Flush the TensorBoard writer (close it if the tracker made it); the HDF5 file is
        complete after every measurement already."""
        if self._tensorboard is not None:
            self._tensorboard.flush()
            if self._owns_writer:
                self._tensorboard.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
