"""The analysis set-up checks a job's first points against the batch probe's estimate."""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from landscape import batching
from landscape.analysis.setup import Setup
from landscape.batching import BatchChoice
from landscape.surface import grid


def _setup(seconds: float) -> Setup:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(60, 4), torch.randint(0, 3, (60,))
    splits = {"train": (x, y), "test": (x[:30], y[:30])}
    target = types.SimpleNamespace(model=model)
    choice = BatchChoice(60, seconds=seconds)
    return Setup([target], None, splits, F.cross_entropy, 60, 60, None, batch_choice=choice)


def _run_points(setup: Setup, monkeypatch, seconds_each: float, points: int):
    """Evaluate ``points`` points, each taking ``seconds_each`` on a fake clock."""
    now = [0.0]

    def tick() -> float:
        now[0] += seconds_each  # an evaluation reads the clock at its start and its end
        return now[0]

    monkeypatch.setattr(grid.time, "perf_counter", tick)
    measure = setup.measure("eval")
    model = setup.targets[0].model
    for _ in range(points):
        measure(model)
    return measure


def test_a_job_slower_than_the_cached_estimate_measures_again_and_says_so(
    tmp_path, monkeypatch, caplog
):
    import logging

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    setup = _setup(seconds=0.01)  # per pass over 60 examples: 0.015 s per point of 90
    with caplog.at_level(logging.INFO, logger="landscape"):
        _run_points(setup, monkeypatch, seconds_each=0.2, points=12)
    said = [r.getMessage() for r in caplog.records if "batch probe predicted" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("the first points took")  # a note, no error
    assert setup.batch_choice.cached is False and batching.cache_file().exists()


def test_a_job_on_pace_keeps_its_batch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    setup = _setup(seconds=0.2 * 60 / 90)
    _run_points(setup, monkeypatch, seconds_each=0.2, points=12)
    assert capsys.readouterr().err == "" and not batching.cache_file().exists()
