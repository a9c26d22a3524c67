"""surface/<name>/: written and read back unchanged, every name documented, nothing documented
that is not written."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape.results import Provenance
from landscape.results.surface import Surface, Trajectory
from tests.results.format_doc import PROVENANCE, documented, written

PARAMETERS = {"fc.weight", "fc.bias"}


def _directions(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"fc.weight": rng.normal(size=(3, 2)), "fc.bias": np.zeros(3)}


def _surface(kind: str, two_d: bool = True) -> Surface:
    x = np.linspace(-1, 1, 5)
    y = np.linspace(0, 0.5, 3) if two_d else None
    shape = (5, 3) if two_d else (5,)
    loss = np.arange(np.prod(shape), dtype=float).reshape(shape)
    loss[0] = np.nan
    done = ~np.isnan(loss)
    trajectory = None
    if kind == "pca":
        trajectory = Trajectory.empty(
            ["train_loss", "train_acc", "test_loss", "test_acc"],
            x=np.array([0.1, 0.2]),
            y=np.array([0.0, -0.3]),
            epoch=np.array([1.0, np.nan]),
            distance_to_plane=np.array([0.0, 0.01]),
            phase=["sgd", ""],
            checkpoint=["run/epoch-001-sgd.pt", "run/final.pt"],
        )
        trajectory.metrics["train_loss"][0], trajectory.done[0] = 0.5, True
    attrs = {
        "between": {"a": "a.pt", "b": "b.pt"},
        "hessian": {
            "eigenvalues": np.ones(2),
            "curvature": "fisher-mc",
            "fisher_samples": 2,
            "tol": 1e-4,
            "curvature_split": "train",
        },
    }
    return Surface(
        provenance=Provenance("run/c.pt", "ab" * 32, arch="mlp", seed=3, config={"x": "-1:1:5"}),
        x=x,
        y=y,
        metrics={"train_loss": loss, "train_acc": loss / 100, "test_loss": loss, "test_acc": loss},
        done=done,
        kind=kind,
        norm="filter",
        ignore="biasbn",
        x_label="direction 1",
        y_label="direction 2" if two_d else None,
        directions={a: _directions(i) for i, a in enumerate("xy" if two_d else "x")},
        attrs=attrs.get(kind, {}),
        explained_variance_ratio=np.array([0.7, 0.2]) if kind == "pca" else None,
        trajectory=trajectory,
    )


KINDS = [("random", True), ("random", False), ("pca", True), ("between", True), ("hessian", True)]


@pytest.mark.parametrize(("kind", "two_d"), KINDS)
def test_a_surface_reads_back_as_written(tmp_path, kind, two_d):
    surface = _surface(kind, two_d)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        surface.write(f.create_group("surface/s"))
        assert Surface.read(f["surface/s"]) == surface


def test_reading_without_directions_leaves_them_out(tmp_path):
    surface = _surface("random")
    with h5py.File(tmp_path / "r.h5", "w") as f:
        surface.write(f.create_group("s"))
        assert Surface.read(f["s"], directions=False).directions == {}


def test_write_values_updates_the_computed_points_in_place(tmp_path):
    surface = _surface("pca")
    with h5py.File(tmp_path / "r.h5", "w") as f:
        surface.write(f.create_group("s"))
        surface.metrics["train_loss"][0] = 7.0
        surface.done[0] = True
        surface.trajectory.projected["test_acc"][1] = 0.9
        surface.provenance.seconds = 12.5
        surface.write_values(f["s"])
        assert Surface.read(f["s"]) == surface
        assert f["s/train_loss"].dims[0][0].name == "/s/x"  # the scales stay attached


def test_metrics_are_indexed_ij_with_x_and_y_as_dimension_scales(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        _surface("random").write(f.create_group("s"))
        for name in ("train_loss", "done"):
            assert [d[0].name for d in f[f"s/{name}"].dims] == ["/s/x", "/s/y"]


def test_every_name_written_is_documented_and_every_documented_name_is_written(tmp_path):
    names: set[str] = set()
    with h5py.File(tmp_path / "r.h5", "w") as f:
        for i, (kind, two_d) in enumerate(KINDS):
            _surface(kind, two_d).write(f.create_group(str(i)))
            names |= written(f[str(i)], PARAMETERS)
    doc = documented("surface/")
    assert names - doc == set()
    assert doc - names - PROVENANCE == set()  # `seconds` is named there, written by Provenance
