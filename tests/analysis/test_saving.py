"""Periodic saving and resume: points dealt by the partition, gathered to the writer."""

from __future__ import annotations

import numpy as np

from landscape.analysis.saving import OwnedPoints


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
