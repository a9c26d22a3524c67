"""The surface and interpolation analyses: a run split over processes and resumed by another
world size gives the numbers of one uninterrupted run, computing each point once."""

from __future__ import annotations

import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape.analysis.interpolation import InterpolationOptions, compute_interpolation
from landscape.analysis.setup import Setup
from landscape.analysis.surface import SurfaceOptions, compute_surface
from landscape.loading.loader import LoadedModel
from landscape.losses import make_loss
from landscape.parallel import SINGLE, Partition
from landscape.progress import Reporter
from landscape.results.interpolation import Interpolation
from landscape.results.surface import Surface


def _target(seed: int) -> LoadedModel:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    fmt = types.SimpleNamespace(format="landscape-checkpoint")
    return LoadedModel(Path(f"run/c{seed}.pt"), f"{seed}" * 64, model, "mlp", seed, "sgd", {}, fmt)


def _setup(*seeds: int) -> Setup:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    return Setup(
        [_target(s) for s in seeds], None, {"train": (x, y)}, make_loss("cross-entropy"), 16, 40, x
    )


QUIET = Reporter(enabled=False)


def _surface_options() -> SurfaceOptions:
    grid = np.linspace(-1, 1, 5)
    return SurfaceOptions(x=grid, y=grid[:3], seed=1, save_every=0.0, config={"case": 1})


def test_a_surface_split_over_two_processes_and_resumed_by_one_equals_one_run(tmp_path):
    whole = compute_surface(
        _surface_options(), _setup(0), tmp_path / "a.h5", "surface/s", reporter=QUIET
    )
    out = tmp_path / "b.h5"
    writer = Partition(0, 2, "test")  # its gather sees only its own share: rank 1's are lost
    compute_surface(
        _surface_options(), _setup(0), out, "surface/s", partition=writer, reporter=QUIET
    )
    with h5py.File(out) as f:
        half = Surface.read(f["surface/s"])
    assert half.done.sum() == 8 and half.done.reshape(-1)[::2].all()  # rank 0's deal of 15
    assert half.provenance.world_size == 2
    resumed = compute_surface(_surface_options(), _setup(0), out, "surface/s", reporter=QUIET)
    assert resumed.done.all()
    np.testing.assert_array_equal(resumed.metrics["train_loss"], whole.metrics["train_loss"])
    with h5py.File(out) as f:
        assert Surface.read(f["surface/s"]) == resumed


def test_a_resumed_surface_keeps_its_directions_and_computes_only_the_missing_points(tmp_path):
    out = tmp_path / "s.h5"
    first = compute_surface(_surface_options(), _setup(0), out, "surface/s", reporter=QUIET)
    with h5py.File(out, "r+") as f:
        f["surface/s/done"][0, :] = False  # as if killed before the first row was saved
        f["surface/s/train_loss"][0, :] = np.nan
    counted = []
    setup = _setup(0)
    measure = setup.measure
    setup.measure = lambda bn: _Counting(measure(bn), counted)
    again = compute_surface(_surface_options(), setup, out, "surface/s", reporter=QUIET)
    assert len(counted) == 3  # the one row of 3 points
    np.testing.assert_array_equal(again.metrics["train_loss"], first.metrics["train_loss"])


class _Counting:
    def __init__(self, inner, calls):
        self.inner, self.calls = inner, calls

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, model):
        self.calls.append(1)
        return self.inner(model)


@pytest.mark.parametrize("partition", [SINGLE, Partition(0, 3, "test")])
def test_an_interpolation_is_computed_by_shares_and_finished_by_any_world_size(tmp_path, partition):
    options = InterpolationOptions(
        alphas=np.linspace(0, 1, 6), bn="eval", save_every=0.0, config={"c": 1}
    )
    out = tmp_path / "i.h5"
    first = compute_interpolation(
        options, _setup(0, 1), out, "interpolation/i", partition=partition, reporter=QUIET
    )
    assert first.done.sum() == (6 if partition is SINGLE else 2)
    done = compute_interpolation(options, _setup(0, 1), out, "interpolation/i", reporter=QUIET)
    with h5py.File(out) as f:
        stored = Interpolation.read(f["interpolation/i"])
    assert stored == done and done.done.all() and np.isfinite(done.barriers["train_loss_frankle"])


def test_a_surface_records_the_batch_and_points_per_pass_it_ran_with(tmp_path):
    out = tmp_path / "s.h5"
    compute_surface(_surface_options(), _setup(0), out, "surface/s", reporter=QUIET)
    with h5py.File(out) as f:
        prov = Surface.read(f["surface/s"]).provenance
    assert (prov.evaluation_batch, prov.points_per_pass) == (16, 1)


def test_info_shows_the_batch_and_points_per_pass_a_surface_ran_with(tmp_path):
    from landscape.cli.info import describe_result_file

    out = tmp_path / "s.h5"
    compute_surface(_surface_options(), _setup(0), out, "surface/s", reporter=QUIET)
    (result,) = describe_result_file(str(out))["results"]
    assert result["provenance"]["evaluation_batch"] == 16
    assert result["provenance"]["points_per_pass"] == 1
