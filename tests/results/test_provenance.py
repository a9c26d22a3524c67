"""Provenance: the attributes of every result group, written and read back unchanged."""

import h5py

from landscape.results import Provenance


def test_provenance_round_trips_through_a_group(tmp_path):
    written = Provenance(
        checkpoint="runs/a/epoch_3.pt",
        checkpoint_sha256="ab" * 32,
        arch="resnet20",
        epoch=3,
        phase="sgd",
        split="train",
        samples=512,
        bn_mode="eval",
        dtype="float32",
        seed=1,
        seconds=2.5,
        world_size=2,
        backend="gloo",
        evaluation_batch=128,
        points_per_pass=4,
        config={"batch_size": 128, "tol": 1e-4},
    )
    with h5py.File(tmp_path / "r.h5", "w") as f:
        written.write(f.create_group("g"))
        assert Provenance.read(f["g"]) == written


def test_missing_values_read_back_as_none(tmp_path):
    written = Provenance(checkpoint="c.pt", checkpoint_sha256="0" * 64)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        written.write(f.create_group("g"))
        assert Provenance.read(f["g"]) == written
