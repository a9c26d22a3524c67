"""interpolation/<name>/: written and read back unchanged, barriers from the values, every name
documented, nothing documented that is not written."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape.results import Provenance
from landscape.results.interpolation import Interpolation
from landscape.surface import path_points
from tests.results.format_doc import PROVENANCE, documented, written


def _line(checkpoints: int, *, key: str | None = None) -> Interpolation:
    segment, alpha = path_points(np.linspace(-0.5, 1.5, 5), checkpoints)
    t = segment + alpha
    loss = 1.0 + np.sin(np.pi * np.clip(t, 0, None)) ** 2  # a bump between checkpoints
    line = Interpolation(
        provenance=Provenance("a.pt", "ab" * 32, bn_mode="recalibrate", seconds=1.5),
        segment=segment,
        segment_alpha=alpha,
        metrics={"train_loss": loss, "train_acc": 1 - loss / 4},
        done=np.ones(t.size, dtype=bool),
        checkpoints=[f"c{k}.pt" for k in range(checkpoints)],
        checkpoint_sha256s=[str(k) * 64 for k in range(checkpoints)],
        epochs=[k or None for k in range(checkpoints)],
        phases=["sgd", *["sam"] * (checkpoints - 1)],
        experiment_key=key,
    )
    line.refresh_barriers()
    return line


@pytest.mark.parametrize(("checkpoints", "key"), [(2, None), (3, None), (2, "0123abcd")])
def test_an_interpolation_reads_back_as_written(tmp_path, checkpoints, key):
    line = _line(checkpoints, key=key)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        line.write(f.create_group("interpolation/i"))
        assert Interpolation.read(f["interpolation/i"]) == line


def test_barriers_are_the_frankle_height_of_the_values():
    line = _line(2)  # f(0) = f(1) = 1, max at alpha = 0.5: f = 2
    assert line.barriers["train_loss_frankle"] == pytest.approx(1.0)
    assert line.segment_barriers is None  # one segment: no per-segment list


def test_a_polyline_puts_checkpoint_k_at_alpha_k_and_keeps_each_segments_barrier(tmp_path):
    line = _line(3)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        line.write(f.create_group("i"))
        alpha = f["i/alpha"][()]
        assert {0.0, 1.0, 2.0} <= set(alpha) and f["i/done"].dims[0][0].name == "/i/alpha"
    assert len(line.segment_barriers["train_loss_frankle"]) == 2


def test_every_name_written_is_documented_and_every_documented_name_is_written(tmp_path):
    names: set[str] = set()
    with h5py.File(tmp_path / "r.h5", "w") as f:
        for i, line in enumerate([_line(2), _line(3, key="k")]):
            line.metrics |= {"test_loss": line.metrics["train_loss"], "test_acc": line.done * 1.0}
            line.refresh_barriers()
            line.write(f.create_group(str(i)))
            names |= written(f[str(i)], set())
    doc = documented("interpolation/")
    assert names - doc == set()
    assert doc - names - PROVENANCE == set()
