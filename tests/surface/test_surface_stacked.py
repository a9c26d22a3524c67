"""Several grid points per pass: the same numbers as one point per pass, and a closed form."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.batching import BatchChoice
from landscape.surface import PointEvaluator, evaluate_surface, random_direction
from landscape.surface.stacked import StackedEvaluator, choose_points
from tests.surface.surface_models import (
    make_quadratic,
    mean_output,
    quadratic_loss,
    tiny_bn_net,
    tiny_data,
)


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(50, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


def _directions(model, seed=0):
    weights = {n: p.detach() for n, p in model.named_parameters()}
    return [
        random_direction(weights, seed=seed, axis=a, norm="filter", ignore="none")
        for a in ("x", "y")
    ]


@pytest.mark.parametrize(
    "make_model", [_mlp, lambda s: tiny_bn_net(s, torch.float64)], ids=["mlp", "bn-eval"]
)
@pytest.mark.parametrize(
    "points", [2, 4, 7]
)  # 7 does not divide the 5 x 3 grid: a short last group
def test_stacked_surface_equals_one_point_per_pass(make_model, points):
    model = make_model(0)
    x, y = tiny_data(n=23, dtype=torch.float64)  # 23: batches of 5 leave an uneven last batch
    splits = {"train": (x, y), "test": (x[:11], y[:11])}
    dirs = _directions(model)
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-0.5, 1.5, 3)
    one = evaluate_surface(
        model, dirs, PointEvaluator(F.cross_entropy, splits, batch_size=5), xs, ys
    )
    many = evaluate_surface(
        model,
        dirs,
        PointEvaluator(F.cross_entropy, splits, batch_size=5, points_per_pass=points),
        xs,
        ys,
    )
    assert many.done.all()
    for name in one.metrics:
        np.testing.assert_allclose(many.metrics[name], one.metrics[name], rtol=0, atol=1e-10)


def test_stacked_quadratic_surface_matches_closed_form():
    model, x, y = make_quadratic(seed=2)
    gen = torch.Generator().manual_seed(4)
    d1, d2 = (
        {"w": torch.randn(model.w.shape, generator=gen, dtype=torch.float64)} for _ in range(2)
    )
    xs, ys = np.linspace(-1, 2, 4), np.linspace(0, 1, 3)
    measure = PointEvaluator(mean_output, {"train": (x, y)}, batch_size=3, points_per_pass=5)
    result = evaluate_surface(model, [d1, d2], measure, xs, ys)
    expected = [
        [quadratic_loss(model, model.w + a * d1["w"] + b * d2["w"], x) for b in ys] for a in xs
    ]
    np.testing.assert_allclose(result.metrics["train_loss"], expected, rtol=1e-12, atol=1e-12)


def test_stacked_resume_fills_only_missing_points_and_restores_the_model():
    model = _mlp(1)
    x, y = tiny_data(n=9, dtype=torch.float64)
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    measure = PointEvaluator(F.cross_entropy, {"train": (x, y)}, batch_size=4, points_per_pass=3)
    xs = np.linspace(-1, 1, 7)
    full = evaluate_surface(model, _directions(model)[:1], measure, xs)
    partial = evaluate_surface(model, _directions(model)[:1], measure, xs)
    partial.done[[1, 4, 5]] = False
    partial.metrics["train_loss"][[1, 4, 5]] = np.nan
    evaluate_surface(model, _directions(model)[:1], measure, xs, result=partial)
    np.testing.assert_array_equal(partial.metrics["train_loss"], full.metrics["train_loss"])
    for n, t in model.state_dict().items():
        assert torch.equal(t, before[n])


@pytest.mark.parametrize("bn_mode", ["train", "recalibrate"])
def test_several_points_per_pass_are_refused_where_batchnorm_has_per_point_state(bn_mode):
    x, y = tiny_data(n=4)
    with pytest.raises(ValueError, match="bn_mode='eval'"):
        PointEvaluator(
            F.cross_entropy, {"train": (x, y)}, bn_mode=bn_mode, bn_inputs=x, points_per_pass=4
        )


def test_choose_points_keeps_one_point_when_stacking_is_not_faster():
    # A one-point pass predicted at 0 s cannot be beaten: the measured choice must stay at 1.
    model = _mlp(0)
    x, y = tiny_data(n=32, dtype=torch.float64)
    one = BatchChoice(batch_size=16, points=1, seconds=0.0, timings={"16": 0.0})
    choice = choose_points(StackedEvaluator(model, F.cross_entropy, {"t": (x, y)}, 16), one, x, y)
    assert (choice.points, choice.batch_size) == (1, 16)
    assert any("x" in k for k in choice.timings)  # stacked candidates were measured


def test_choose_points_takes_stacking_when_one_point_is_slow():
    model = _mlp(0)
    x, y = tiny_data(n=32, dtype=torch.float64)
    one = BatchChoice(batch_size=16, points=1, seconds=1e3, timings={"16": 1e3})
    choice = choose_points(StackedEvaluator(model, F.cross_entropy, {"t": (x, y)}, 16), one, x, y)
    assert choice.points > 1 and choice.seconds < 1e3
