"""Interpolation: path points, barrier definitions, exact end points, BatchNorm policies."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.surface import (
    PointEvaluator,
    barrier_heights,
    interpolate,
    path_points,
    recalibrate_batchnorm,
)
from landscape.surface.flat import state_tensors
from tests.surface.surface_models import tiny_bn_net, tiny_data


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_checkpoint_path_always_holds_both_end_points():
    segment, alpha = path_points(np.linspace(-0.2, 1.2, 8), 2)  # the grid misses 0 and 1
    assert 0.0 in alpha and 1.0 in alpha
    assert np.all(segment == 0) and np.all(np.diff(alpha) > 0)
    assert alpha[0] == pytest.approx(-0.2) and alpha[-1] == pytest.approx(1.2)


def test_grid_points_within_rounding_of_an_end_point_become_that_end_point():
    _, alpha = path_points(np.linspace(-0.2, 1.2, 29), 2)  # holds -2.8e-17 instead of 0
    assert len(alpha) == 29 and 0.0 in alpha and 1.0 in alpha


def test_polyline_visits_every_checkpoint_once_and_extrapolates_only_at_the_ends():
    segment, alpha = path_points([-0.5, 0.0, 0.5, 1.0, 1.5], 3)
    t = segment + alpha
    np.testing.assert_allclose(t, [-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert list(segment) == [0, 0, 0, 1, 1, 1, 1]


def test_barrier_definitions_on_known_values():
    a = np.array([-0.5, 0.0, 1 / 3, 2 / 3, 1.0, 1.5])
    f = np.array([9.0, 0.0, 1.0, 2.0, 2.0, 9.0])  # outside [0, 1] is ignored
    b = barrier_heights(a, f)
    assert b["frankle"] == pytest.approx(2.0 - 1.0)  # max minus mean of the ends
    assert b["entezari"] == pytest.approx(2.0 - 4 / 3)  # largest rise above the chord (at 2/3)


def test_barriers_are_zero_on_a_straight_line():
    a = np.linspace(0, 1, 5)
    b = barrier_heights(a, 1.0 + 2.0 * a)
    assert b["entezari"] == pytest.approx(0.0) and b["frankle"] == pytest.approx(1.0)


def _measure(x, y, bn_mode):
    return PointEvaluator(
        F.cross_entropy,
        {"train": (x, y), "test": (x[:10], y[:10])},
        batch_size=8,
        bn_mode=bn_mode,
        bn_inputs=x,
    )


@pytest.mark.parametrize(("bn", "bn_mode"), [("interpolate", "eval"), ("recompute", "recalibrate")])
def test_end_points_equal_each_checkpoints_own_metrics(bn, bn_mode):
    x, y = tiny_data(32)
    a, b = tiny_bn_net(0), tiny_bn_net(1)
    measure = _measure(x, y, bn_mode)
    own_a, own_b = measure(a), measure(b)  # recalibrate mode recomputes statistics first
    model = tiny_bn_net(0)
    result = interpolate(
        model, [_state(tiny_bn_net(0)), _state(b)], measure, np.linspace(-0.2, 1.2, 8), bn=bn
    )
    start, end = np.flatnonzero(result.alpha == 0)[0], np.flatnonzero(result.alpha == 1)[0]
    for name in measure.names:
        assert result.metrics[name][start] == own_a[name], name
        assert result.metrics[name][end] == own_b[name], name


def test_interpolating_buffers_uses_interpolated_running_statistics():
    x, y = tiny_data(16)
    a, b = tiny_bn_net(0), tiny_bn_net(1)
    result = interpolate(
        tiny_bn_net(0), [_state(a), _state(b)], _measure(x, y, "eval"), [0.5], bn="interpolate"
    )
    mid = tiny_bn_net(0)
    with torch.no_grad():
        for name, t in state_tensors(mid).items():
            if t.is_floating_point():
                t.copy_(0.5 * state_tensors(a)[name] + 0.5 * state_tensors(b)[name])
    expected = _measure(x, y, "eval")(mid)
    i = np.flatnonzero(result.alpha == 0.5)[0]
    assert result.metrics["train_loss"][i] == pytest.approx(expected["train_loss"], rel=1e-6)


def test_model_is_restored_and_barriers_are_reported():
    x, y = tiny_data(16)
    model = tiny_bn_net(0)
    before = _state(model)
    result = interpolate(
        model,
        [_state(tiny_bn_net(2)), _state(tiny_bn_net(3)), _state(tiny_bn_net(4))],
        _measure(x, y, "recalibrate"),
        np.linspace(0, 1, 5),
    )
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    per_segment = result.segment_barriers()
    assert set(per_segment) == {
        f"{s}_{m}_{d}"
        for s in ("train", "test")
        for m in ("loss", "error")
        for d in ("frankle", "entezari")
    }
    assert all(len(v) == 2 and np.isfinite(v).all() for v in per_segment.values())
    overall = result.barriers()
    assert overall["train_loss_entezari"] == max(per_segment["train_loss_entezari"])


def test_recalibration_changes_running_statistics_only():
    x, _ = tiny_data(40)
    model = tiny_bn_net(0)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    recalibrate_batchnorm(model, x, batch_size=40)
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())
    assert not model.training and model.bn.momentum == 0.1
    with torch.no_grad():
        pre = model.conv(x)  # BatchNorm input
    torch.testing.assert_close(model.bn.running_mean, pre.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(model.bn.running_var, pre.var(dim=(0, 2, 3), unbiased=True))
    assert model.bn.num_batches_tracked.item() == 1


def test_recalibration_averages_batches_equally():
    x, _ = tiny_data(40)
    model = tiny_bn_net(0)
    recalibrate_batchnorm(model, x, batch_size=10)
    with torch.no_grad():
        means = torch.stack(
            [model.conv(x[i : i + 10]).mean(dim=(0, 2, 3)) for i in range(0, 40, 10)]
        )
    torch.testing.assert_close(model.bn.running_mean, means.mean(dim=0))
