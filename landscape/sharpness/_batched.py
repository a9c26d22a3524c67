"""Loss and gradient over many examples, and parameters that can be moved and put back.

Every measure needs the same two things: the mean loss (and its gradient) over a set
of examples that may not fit in one batch, and a way to evaluate the model at
``w + delta`` and return exactly to ``w`` afterwards. Both live here, in one place.

Over several processes (a :class:`~landscape.parallel.Partition`) each one sums over its
share of the examples (``partition.example_range(n)``) with the weights of one process and
the sums are all-reduced, so every process gets the answer of one; everything built on
these two functions is data-parallel without knowing it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from landscape.losses import LossFn
from landscape.parallel import SINGLE, Partition


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters a perturbation moves: every one that requires a gradient."""
    return [p for p in model.parameters() if p.requires_grad]


def count_correct(outputs: torch.Tensor, targets: torch.Tensor) -> int:
    """Correct top-1 predictions, or -1 when the outputs are not class scores."""
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return -1
    if targets.dtype in (torch.int64, torch.int32):
        return int((outputs.argmax(dim=1) == targets).sum())
    return int((outputs.argmax(dim=1) == targets.argmax(dim=1)).sum())


def loss_and_grad(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    params: Sequence[torch.Tensor],
    batch_size: int | None = None,
    partition: Partition = SINGLE,
) -> tuple[float, float, list[torch.Tensor]]:
    """Mean loss, accuracy (NaN if not a classifier) and the gradient of the mean loss.

    The examples are taken in batches of ``batch_size``; each batch's loss is weighted
    by its size, so the result is the gradient of the mean over all examples (this
    process's share of them, all-reduced, with a ``partition``).
    """
    n = inputs.shape[0]
    grads = [torch.zeros_like(p) for p in params]
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    correct = 0
    for x, y in share_batches(inputs, targets, batch_size, partition):
        with torch.enable_grad():
            out = model(x)
            loss = loss_fn(out, y)
            parts = torch.autograd.grad(loss * (x.shape[0] / n), params, allow_unused=True)
        for g, part in zip(grads, parts):
            if part is not None:
                g.add_(part)
        total += loss.detach().double() * x.shape[0]
        c = count_correct(out.detach(), y)
        correct = -1 if c < 0 or correct < 0 else correct + c
    if partition.is_distributed:
        grads = _sum_tensors(partition, grads)
        total, correct = _sum_counts(partition, total, correct)
    accuracy = float("nan") if correct < 0 else correct / n
    return (total / n).item(), accuracy, grads


def share_batches(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int | None,
    partition: Partition = SINGLE,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This process's share of the examples (all of them for one process), in batches of
    ``batch_size`` (None: the whole share at once)."""
    share = partition.example_range(inputs.shape[0])
    step = batch_size or inputs.shape[0]
    for start in range(share.start, share.stop, step):
        stop = min(start + step, share.stop)
        yield inputs[start:stop], targets[start:stop]


def _sum_tensors(partition: Partition, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The processes' sum of each tensor, in one all-reduce of their flat concatenation."""
    flat = partition.sum_(torch.cat([t.reshape(-1) for t in tensors]))
    return [
        part.view_as(t) for part, t in zip(torch.split(flat, [t.numel() for t in tensors]), tensors)
    ]


def _sum_counts(
    partition: Partition, total: torch.Tensor, correct: int
) -> tuple[torch.Tensor, int]:
    """The processes' summed loss total and correct count (-1 stays -1: not a classifier)."""
    both = torch.stack(
        [total, torch.tensor(float(correct), dtype=torch.float64, device=total.device)]
    )
    flagged = torch.tensor([1.0 if correct < 0 else 0.0], dtype=torch.float64, device=total.device)
    summed = partition.sum_(torch.cat([both, flagged]))
    return summed[0], -1 if summed[2] > 0 else int(round(summed[1].item()))


@torch.no_grad()
def loss_and_accuracy(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int | None = None,
    partition: Partition = SINGLE,
) -> tuple[float, float]:
    """Mean loss and accuracy (NaN if not a classifier), without gradients."""
    n = inputs.shape[0]
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    correct = 0
    for x, y in share_batches(inputs, targets, batch_size, partition):
        out = model(x)
        total += loss_fn(out, y).double() * x.shape[0]
        c = count_correct(out, y)
        correct = -1 if c < 0 or correct < 0 else correct + c
    if partition.is_distributed:
        total, correct = _sum_counts(partition, total, correct)
    return (total / n).item(), float("nan") if correct < 0 else correct / n


def global_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Euclidean norm of a list of tensors seen as one flat vector (float64)."""
    return torch.sqrt(sum((t.double() ** 2).sum() for t in tensors))


class Origin:
    """The parameters ``w`` at creation; :meth:`move_to` sets ``w + delta``, :meth:`restore`
    puts ``w`` back exactly."""

    def __init__(self, params: Sequence[torch.Tensor]):
        self.params = list(params)
        self.values = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def move_to(self, delta: Sequence[torch.Tensor] | None) -> None:
        if delta is None:
            self.restore()
            return
        for p, w, d in zip(self.params, self.values, delta):
            torch.add(w, d.to(w.dtype), out=p.data)

    @torch.no_grad()
    def restore(self) -> None:
        for p, w in zip(self.params, self.values):
            p.data.copy_(w)


@contextmanager
def perturbable(model: nn.Module) -> Iterator[Origin]:
    """Yield an :class:`Origin` of the model's parameters and restore them on exit, whatever
    happens."""
    origin = Origin(trainable_parameters(model))
    try:
        yield origin
    finally:
        origin.restore()
