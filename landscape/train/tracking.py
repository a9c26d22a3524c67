"""``landscape train --track``: the run's sharpness measured every few steps by the same
:class:`landscape.Tracker` a user puts in their own loop, written to ``<run>/track.h5``.

Tracking does not change the training (the tracker leaves every state as it found it), so it
is not part of the run config: a run continued with or without ``--track`` is the same run.
A resumed run continues ``track/<run>`` from the step of its checkpoint on; the steps measured
after that checkpoint by the killed run are measured again and replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

TRACK_FILE = "track.h5"


@dataclass(frozen=True)
class TrackRequest:
    """What ``--track``, ``--track-every`` and ``--track-samples`` ask for."""

    measures: tuple[str, ...]
    every: int
    samples: int = 1024
    subset_seed: int = 0


def start_tracker(
    request: TrackRequest, trainer: Any, train_x: torch.Tensor, train_y: torch.Tensor, run_dir: Path
):
    """The tracker of a run: ``request.samples`` training examples (un-augmented, drawn by the
    analysis commands' rule), the run's loss and optimizer, on every rank."""
    from landscape.track import Tracker

    return Tracker(
        trainer.model,
        trainer.loss_fn,
        train_x,
        train_y,
        every=request.every,
        measures=request.measures,
        samples=request.samples,
        subset_seed=request.subset_seed,
        optimizer=trainer.optimizer,
        out=Path(run_dir) / TRACK_FILE,
        name=Path(run_dir).name,
        partition=trainer.partition,
        loss_name="cross-entropy",
    )
