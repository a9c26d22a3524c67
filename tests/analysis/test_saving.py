"""Periodic saving and resume: points dealt by the partition, gathered to the writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from landscape import store
from landscape.analysis.saving import OwnedPoints, PeriodicSaver, owned_mask
from landscape.parallel import SINGLE, Partition


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_the_points_left_are_dealt_once_each_whatever_was_done_before(world_size):
    done = np.zeros((4, 5), dtype=bool)
    done[0, :3] = done[2, 1] = True  # left by an earlier run of another world size
    free = [~owned_mask(done, Partition(rank, world_size)) for rank in range(world_size)]
    assert np.array_equal(np.sum(free, axis=0), (~done).astype(int))  # each left point once
    assert max(f.sum() for f in free) - min(f.sum() for f in free) <= 1  # balanced


def test_a_single_process_owns_every_point_left():
    done = np.array([True, False, False, True])
    np.testing.assert_array_equal(owned_mask(done, SINGLE), done)


class _Exchange(Partition):
    """Rank ``rank`` of two, whose gather returns the other rank's recorded share too."""

    def __init__(self, rank: int, other_share=None) -> None:
        super().__init__(rank, 2, "test")
        object.__setattr__(self, "other", other_share)
        object.__setattr__(self, "sent", None)

    def gather(self, value):
        object.__setattr__(self, "sent", value)
        shares = [value, self.other] if self.rank == 0 else [self.other, value]
        return [s for s in shares if s is not None]


def _compute(share: OwnedPoints) -> None:
    """The engine's part: every point the view leaves open gets its value and is marked."""
    flat = share.view.reshape(-1)
    for i in np.flatnonzero(~flat):
        share.metrics["train_loss"].reshape(-1)[i] = 10.0 + i
        flat[i] = True


def test_sync_brings_every_processes_points_into_the_writers_arrays():
    done = np.zeros(7, dtype=bool)
    done[2] = True  # resumed: point 2 was on disk already
    arrays = [{"train_loss": np.where(done, 12.0, np.nan)} for _ in range(2)]
    second = OwnedPoints(arrays[1], done.copy(), _Exchange(1))
    _compute(second)
    second.sync()
    first = OwnedPoints(arrays[0], done.copy(), _Exchange(0, second.partition.sent))
    _compute(first)
    first.sync()
    assert first.done.all()
    np.testing.assert_array_equal(arrays[0]["train_loss"], 10.0 + np.arange(7))


def test_each_run_that_computed_points_is_recorded_with_its_processes(tmp_path, monkeypatch):
    out, finished = tmp_path / "r.h5", [0]
    with store.transaction(out) as f:
        store.replace_group(f, "surface/A")
        store.claim_group(f, "surface/A")

    def run(partition, points_after):
        saver = PeriodicSaver(out, 0.0, "surface/A", lambda: finished[0], 10, partition=partition)
        saver.claim()
        for finished[0] in points_after:  # one save after each step
            saver.flush(lambda f: None)

    run(Partition(0, 2, "gloo"), [4])  # begun by two processes, then killed
    monkeypatch.setattr(store, "WRITER", "host:2:resumed")
    run(Partition(), [7, 10])  # finished by one
    with store.open_result_file(out) as f:
        sessions = json.loads(f["surface/A"].attrs["sessions"])
    assert [{k: s[k] for k in ("world_size", "backend", "points")} for s in sessions] == [
        {"world_size": 2, "backend": "gloo", "points": 4},
        {"world_size": 1, "backend": "none", "points": 6},
    ]
