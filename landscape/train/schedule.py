"""What happens in each epoch: the learning rate and the optimizer phase (SGD or SAM).

Both are pure functions of the epoch index and the run config, so a resumed run or a
``--from`` branch continues the schedule exactly, with nothing to restore but the epoch.
Epoch indices count from 0: epoch ``e`` is the (e+1)-th pass over the data, and a
checkpoint with ``epoch = e + 1`` holds the weights after it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SGD = "sgd"
SAM = "sam"


def learning_rate(
    epoch: int,
    *,
    lr: float,
    schedule: str,
    epochs: int,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """Learning rate used during epoch ``epoch`` (0-based).

    ``step``: ``lr * gamma**k`` where k counts the milestones already reached
    (the paper's 160 epochs with ×0.1 at epoch 80 is ``milestones=[80]``).
    ``cosine``: ``lr * (1 + cos(pi * epoch / epochs)) / 2`` (Loshchilov & Hutter 2017, no restarts).
    ``constant``: ``lr``.
    """
    if schedule == "step":
        return lr * gamma ** sum(1 for m in milestones if epoch >= m)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "constant":
        return lr
    raise ValueError(f"unknown schedule {schedule!r}")


def default_milestones(epochs: int) -> list[int]:
    """×0.1 at half the epochs, as in the paper (160 epochs, drop at 80)."""
    return [epochs // 2] if epochs >= 2 else []


def phase(epoch: int, sam_start: int | None, sam_end: int | None) -> str:
    """``sam`` for ``sam_start <= epoch < sam_end`` (``sam_end`` None: to the end), else ``sgd``."""
    if sam_start is None or epoch < sam_start:
        return SGD
    if sam_end is not None and epoch >= sam_end:
        return SGD
    return SAM


def switch_epochs(epochs: int, sam_start: int | None, sam_end: int | None) -> list[int]:
    """Completed-epoch counts after which the phase changes (the last epoch before a switch)."""
    return [
        e
        for e in range(1, epochs)
        if phase(e - 1, sam_start, sam_end) != phase(e, sam_start, sam_end)
    ]


def is_save_epoch(
    completed: int, *, epochs: int, save_every: int, sam_start: int | None, sam_end: int | None
) -> bool:
    """Checkpoint after ``completed`` epochs: every ``save_every``, before each switch, at end."""
    return (
        completed == epochs
        or (save_every > 0 and completed % save_every == 0)
        or completed in switch_epochs(epochs, sam_start, sam_end)
    )
