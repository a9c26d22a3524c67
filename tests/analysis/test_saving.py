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
