"""Periodic saving and resume: points dealt by the partition, gathered to the writer."""

from __future__ import annotations

import json

import numpy as np

from landscape import store
from landscape.analysis.saving import OwnedPoints, PeriodicSaver
from landscape.parallel import Partition


def _compute(share: OwnedPoints) -> None:
    """The engine's part: every point the view leaves open gets its value and is marked."""
    flat = share.view.reshape(-1)
    for i in np.flatnonzero(~flat):
        share.metrics["train_loss"].reshape(-1)[i] = 10.0 + i
        flat[i] = True


def test_sync_marks_exactly_the_points_the_engine_finished_as_done():
    done = np.zeros(7, dtype=bool)
    done[2] = True  # resumed: point 2 was on disk already
    share = OwnedPoints({"train_loss": np.where(done, 12.0, np.nan)}, done)
    share.view[[0, 5]] = True  # the engine finished points 0 and 5 so far
    assert not done[0]  # the engine's marks reach the result only through sync
    share.sync()
    np.testing.assert_array_equal(np.flatnonzero(done), [0, 2, 5])
    _compute(share)
    share.sync()
    assert done.all()
    np.testing.assert_array_equal(share.metrics["train_loss"][[1, 6]], [11.0, 16.0])


def test_save_result_claims_a_new_name_for_another_checkpoint_and_replaces_its_own(
    tmp_path, caplog
):
    import logging

    import h5py

    from landscape.analysis.saving import save_result

    out = tmp_path / "r.h5"

    def write(sha, value):
        def into(f, name):
            group = f.require_group(f"escape/{name}")
            group.attrs.update({"checkpoint_sha256": sha, "v": value})

        return into

    a, b = "a" * 64, "b" * 64
    assert save_result(out, "escape", "ckpt", [a], write(a, 1)) == "ckpt"
    assert save_result(out, "escape", "ckpt", [b], write(b, 2)) == "ckpt-2"
    with caplog.at_level(logging.INFO):
        assert save_result(out, "escape", "ckpt", [a], write(a, 3), merge=True) == "ckpt"
    assert "updating escape/ckpt in" in caplog.text
    with h5py.File(out) as f:
        assert (f["escape/ckpt"].attrs["v"], f["escape/ckpt-2"].attrs["v"]) == (3, 2)


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
