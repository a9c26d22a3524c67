"""Batch sizes chosen by measurement: candidates, the probe, the on-disk cache."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape import batching
from landscape.batching import (
    cache_file,
    candidate_sizes,
    choose,
    forward_batch_size,
    model_signature,
    probe,
    product_batch_size,
)


class FakeClock:
    """``time.perf_counter`` that advances only when the fake work says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(batching.time, "perf_counter", fake)
    monkeypatch.setattr(batching.time, "process_time", fake)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    return fake


def _work(clock: FakeClock, cost, calls: list[int] | None = None):
    def run(size: int) -> None:
        clock.now += cost(size)
        if calls is not None:
            calls.append(size)

    return run


@pytest.mark.parametrize("n", [1, 15, 16, 512, 2000, 50_000])
def test_candidates_are_balanced_ascending_and_include_n(n):
    sizes = candidate_sizes(n)
    assert sizes == sorted(set(sizes)) and sizes[-1] == n
    assert all(s == math.ceil(n / math.ceil(n / s)) for s in sizes)  # k equal batches of size s
    assert all(s >= min(batching.SMALLEST, n) for s in sizes)
    assert len(sizes) <= 4 * math.log2(n + 1) + 2


def test_candidates_respect_the_largest_allowed():
    assert max(candidate_sizes(2000, largest=300)) <= 300


def test_probe_finds_the_minimum_of_a_non_convex_cost(clock):
    # Per-call overhead, per-example cost, a cache penalty growing with b (optimum near 280),
    # and sizes 41-129 on a slow path (as seen on a busy CPU): a probe that stops at the first
    # slower sizes would stay at 32.
    def cost(b: int) -> float:
        return 0.008 + 1e-5 * b + 1e-7 * b**2 + (0.5 if 40 < b < 130 else 0.0)

    timings = probe(_work(clock, cost), 512, candidate_sizes(512))
    best = min(timings, key=timings.get)
    expected = min(candidate_sizes(512), key=lambda b: math.ceil(512 / b) * cost(b))
    assert best == expected and 130 < best < 512
    assert timings[best] == pytest.approx(math.ceil(512 / best) * cost(best))


def test_probe_stops_at_the_first_size_that_does_not_fit(clock):
    def run(size: int) -> None:
        if size > 100:
            raise torch.OutOfMemoryError("too big")
        clock.now += 0.01

    timings = probe(run, 512, candidate_sizes(512))
    assert timings and max(timings) <= 100


def test_work_is_timed_on_the_wall_clock_on_every_device(monkeypatch):
    # the process CPU clock adds both threads' work: a batch that leaves one idle looked cheap
    monkeypatch.setattr(batching.time, "process_time", lambda: 8.0)
    monkeypatch.setattr(batching.time, "perf_counter", lambda: 100.0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert batching.clock(torch.device("cpu")) == batching.clock(None) == 100.0


def test_probe_repeats_calls_too_short_to_time(clock):
    calls: list[int] = []
    probe(_work(clock, lambda b: 1e-4, calls), 64, [64])
    assert len(calls) > 1 + batching.ROUNDS  # warm-up, then rounds of several calls each


def test_choice_is_cached_and_a_rerun_does_not_probe(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model, x = nn.Linear(3, 2), torch.zeros(100, 3)
    calls: list[int] = []
    first = choose("forward", model, x, _work(clock, lambda b: 0.01 + 1e-3 * b, calls))
    assert not first.cached and calls and first.probe_seconds > 0
    assert cache_file() == tmp_path / "landscape" / "batch-sizes.json" and cache_file().exists()
    calls.clear()
    again = choose("forward", model, x, _work(clock, lambda b: 0.01 + 1e-3 * b, calls))
    assert (
        calls == []
        and again.cached
        and again.batch_size == first.batch_size
        and again.probe_seconds == 0
    )


@pytest.mark.parametrize("change", ["threads", "n", "model", "kind", "openmp"])
def test_cache_key_covers_what_changes_the_best_size(tmp_path, monkeypatch, clock, change):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model, x, kind = nn.Linear(3, 2), torch.zeros(100, 3), "forward"
    choose(kind, model, x, _work(clock, lambda b: 0.01))
    if change == "threads":
        monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    elif change == "n":
        x = torch.zeros(99, 3)
    elif change == "model":
        model = nn.Linear(3, 4)
    elif change == "openmp":
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE" if batching.openmp_policy() else "PASSIVE")
    else:
        kind = "hvp"
    calls: list[int] = []
    assert not choose(kind, model, x, _work(clock, lambda b: 0.01, calls)).cached and calls


def test_the_load_at_probe_time_is_kept_in_the_cache(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(batching, "current_load", lambda: 1.5)
    model, x = nn.Linear(3, 2), torch.zeros(10, 3)
    assert choose("forward", model, x, _work(clock, lambda b: 0.01)).load == 1.5
    (entry,) = json.loads(cache_file().read_text()).values()
    assert entry["load"] == 1.5
    assert choose("forward", model, x, _work(clock, lambda b: 0.01)).load == 1.5  # cached


def test_refresh_measures_again_and_replaces_the_cached_choice(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model, x = nn.Linear(3, 2), torch.zeros(100, 3)
    smallest = min(candidate_sizes(100))
    assert choose("forward", model, x, _work(clock, lambda b: 1e-3 * b * b)).batch_size == smallest
    flipped = choose("forward", model, x, _work(clock, lambda b: 0.01), refresh=True)
    assert not flipped.cached and flipped.batch_size == 100
    assert choose("forward", model, x, _work(clock, lambda b: 0.01)).batch_size == 100


class _Job:
    """A fake job for PaceCheck: evaluations of given seconds each."""

    def __init__(self, estimate: float) -> None:
        self.reprobes, self.lines = 0, []
        self.check = batching.PaceCheck(estimate, self.reprobe, say=self.lines.append)

    def reprobe(self) -> batching.BatchChoice:
        self.reprobes += 1
        return batching.BatchChoice(64, seconds=0.2, probe_seconds=1.0)

    def points(self, *seconds: float) -> None:
        for s in seconds:
            self.check(s)


@pytest.mark.parametrize("observed", [0.2, 0.24, 0.16])
def test_points_within_a_quarter_of_the_estimate_keep_the_choice(observed):
    job = _Job(estimate=0.2)
    job.points(*[observed] * 20)
    assert job.reprobes == 0 and job.lines == [] and job.check.done


@pytest.mark.parametrize(("observed", "word"), [(0.3, "slower"), (0.12, "faster")])
def test_points_off_the_estimate_measure_again_once_and_say_so(observed, word):
    job = _Job(estimate=0.2)
    job.points(*[observed] * 20)
    assert job.reprobes == 1 and len(job.lines) == 1
    assert f"{word} than the 0.2 s the batch probe predicted" in job.lines[0]
    assert "batch 64" in job.lines[0] and job.check.choice.batch_size == 64


def test_the_first_point_warms_up_and_is_not_judged():
    job = _Job(estimate=0.2)
    job.points(5.0, *[0.2] * 10)  # a slow first call (allocator, kernel choice)
    assert job.reprobes == 0


def test_one_slow_evaluation_among_the_first_does_not_decide():
    job = _Job(estimate=0.2)
    job.points(0.2, 0.2, 3.0, 0.2)  # the median of the timed ones
    assert job.check.done and job.reprobes == 0


def test_the_pace_is_judged_after_enough_time_or_enough_points():
    job = _Job(estimate=0.001)
    job.points(*[0.002] * batching.PACE_POINTS)  # 2 timed, 4 ms: too little to judge
    assert not job.check.done
    job.points(*[0.002] * batching.PACE_MOST_POINTS)
    assert job.check.done and job.reprobes == 1


def test_an_unreadable_cache_is_probed_again_and_rewritten(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache_file().parent.mkdir(parents=True)
    cache_file().write_text("{not json")
    choice = choose("forward", nn.Linear(3, 2), torch.zeros(10, 3), _work(clock, lambda b: 0.01))
    assert not choice.cached
    assert json.loads(cache_file().read_text())  # valid again


def test_signature_depends_on_structure_not_values():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    assert model_signature(a) == model_signature(b)
    assert model_signature(a) != model_signature(nn.Linear(3, 3))
    assert model_signature(a) != model_signature(nn.Sequential(nn.Linear(3, 2)))


def test_forward_probe_on_a_real_model_leaves_it_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(40, 4)
    choice = forward_batch_size(model, x, cache=False)
    assert choice.batch_size in candidate_sizes(40)
    assert model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_product_probe_times_hessian_vector_products(monkeypatch):
    from landscape.curvature import operator

    products: list[int] = []
    matvec = operator.HessianOperator.matvec

    def counting(self, v):
        products.append(self.num_samples)
        return matvec(self, v)

    monkeypatch.setattr(operator.HessianOperator, "matvec", counting)
    torch.manual_seed(0)
    model, x, y = (
        nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)),
        torch.randn(40, 4),
        torch.arange(40) % 3,
    )
    choice = product_batch_size(model, F.cross_entropy, x, y, cache=False)
    assert choice.batch_size in candidate_sizes(40, step=2.0)
    assert set(products) == {int(b) for b in choice.timings}
