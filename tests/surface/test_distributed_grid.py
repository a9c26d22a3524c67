"""Grid points dealt to two Gloo ranks: the surface of one process, saved by one writer, and a
run whose rank died resumes (with any world size) computing only the missing points."""

import functools

import numpy as np
import pytest
import torch

from landscape.parallel import SINGLE
from landscape.surface import PointEvaluator, SurfaceResult, evaluate_surface
from tests.ranks import run_ranks
from tests.surface.surface_models import make_quadratic, mean_output, quadratic_loss

pytestmark = pytest.mark.slow

XS, YS = np.linspace(-1.0, 2.0, 5), np.linspace(0.0, 1.0, 4)


def _directions(model):
    gen = torch.Generator().manual_seed(1)
    return [{"w": torch.randn(model.w.shape, generator=gen, dtype=torch.float64)} for _ in "xy"]


def closed_form() -> np.ndarray:
    model, x, _ = make_quadratic()
    d1, d2 = _directions(model)
    w = model.w.detach()
    return np.array(
        [[quadratic_loss(model, w + a * d1["w"] + b * d2["w"], x) for b in YS] for a in XS]
    )


class _CountingGathers:
    """A partition that counts its gathers (each one a meeting of all ranks)."""

    def __init__(self, inner) -> None:
        self.inner, self.gathers = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def gather(self, value):
        self.gathers += 1
        return self.inner.gather(value)


def surface(partition, points_per_pass=1, start=None, fail_at=None, save_every=0.0) -> dict:
    """The 5x4 surface on ``partition``; ``start`` = (metrics, done) to resume from; rank 1
    raises at its ``fail_at``-th point. Returns the result, what each on_save saw and how many
    gathers the ranks met at."""
    partition = _CountingGathers(partition)
    model, x, y = make_quadratic()
    measure = PointEvaluator(
        mean_output, {"train": (x, y)}, batch_size=3, points_per_pass=points_per_pass
    )
    result = SurfaceResult.empty(XS, YS, measure.names)
    if start is not None:
        result.metrics["train_loss"][...], result.done[...] = start
    saves, evaluated = [], []
    if partition.rank == 1 and fail_at is not None:
        measure_point = measure.__call__

        def failing(m):
            if len(evaluated) == fail_at:
                raise RuntimeError("rank 1 dies")
            evaluated.append(1)
            return measure_point(m)

        measure = _Wrapped(measure, failing)
    error = None
    try:
        evaluate_surface(
            model,
            _directions(model),
            measure,
            XS,
            YS,
            result=result,
            save_every=save_every,
            on_save=lambda r: saves.append((r.metrics["train_loss"].copy(), r.done.copy())),
            partition=partition,
        )
    except Exception as exc:  # the test looks at what was saved when a rank died
        error = f"{type(exc).__name__}: {exc}"
    return {
        "loss": result.metrics["train_loss"],
        "done": result.done,
        "saves": saves,
        "error": error,
        "gathers": partition.gathers,
    }


class _Wrapped(PointEvaluator):
    """A PointEvaluator whose call is replaced (evaluate_surface calls ``measure(model)``)."""

    def __init__(self, inner: PointEvaluator, call) -> None:
        self.__dict__.update(inner.__dict__)
        self._call = call

    def __call__(self, model):
        return self._call(model)


@functools.cache
def two_ranks(points_per_pass: int = 1) -> list[dict]:
    return run_ranks(surface, 2, points_per_pass)


@pytest.mark.parametrize("points_per_pass", [1, 3], ids=["one-point", "stacked"])
def test_two_ranks_compute_the_surface_of_one_process(points_per_pass):
    one = surface(SINGLE, points_per_pass)
    ranks = two_ranks(points_per_pass)
    np.testing.assert_allclose(one["loss"], closed_form(), rtol=1e-12)
    for rank in ranks:  # every rank ends with every value
        assert rank["error"] is None and rank["done"].all()
        np.testing.assert_allclose(rank["loss"], one["loss"], rtol=1e-10, atol=0)


def test_only_the_writer_saves():
    writer, other = two_ranks()
    assert writer["saves"] and not other["saves"]
    assert writer["saves"][-1][1].all()


def test_a_run_whose_rank_died_resumes_on_one_process_with_nothing_lost():
    full = surface(SINGLE)["loss"]
    writer, dead = run_ranks(surface, 2, 1, None, 3)
    assert dead["error"] == "RuntimeError: rank 1 dies"
    assert writer["error"].startswith("PeerFailed")
    loss, done = writer["saves"][-1]  # what the writer had saved when rank 1 died
    assert 0 < done.sum() < done.size
    np.testing.assert_array_equal(loss[done], full[done])  # what was saved is right
    assert np.isnan(loss[~done]).all()
    resumed = surface(SINGLE, start=(loss, done))
    np.testing.assert_allclose(resumed["loss"], full, rtol=1e-10, atol=0)
    saved_then = np.argwhere(done)
    assert all(resumed["loss"][tuple(i)] == loss[tuple(i)] for i in saved_then)


def test_a_resumed_grid_deals_only_the_missing_points():
    full = surface(SINGLE)["loss"]
    done = np.zeros(full.shape, bool)
    done.reshape(-1)[[0, 3, 4, 9, 15]] = True
    start = (np.where(done, full, np.nan), done)
    ranks = run_ranks(surface, 2, 1, start)
    first_save = [rank["saves"][0][1] for rank in ranks if rank["saves"]][0]
    assert first_save.sum() == done.sum() + 2  # one new point per rank in the first step
    np.testing.assert_allclose(ranks[0]["loss"], full, rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    ("save_every", "meetings"),
    [(0.0, 1 + 10), (60.0, 1 + 2)],
    ids=["saving-every-step", "saving-every-minute"],
)
def test_ranks_meet_at_every_step_only_when_saving_asks_for_it(save_every, meetings):
    """20 points on 2 ranks are 10 steps each. Besides the count of points left (1 gather),
    the ranks meet after every step when every step is to be saved; otherwise after the first
    step (which times a step) and then every couple of seconds' worth: here, the last one."""
    ranks = run_ranks(surface, 2, 1, None, None, save_every)
    assert [rank["gathers"] for rank in ranks] == [meetings, meetings]
    np.testing.assert_allclose(ranks[0]["loss"], closed_form(), rtol=1e-12)
