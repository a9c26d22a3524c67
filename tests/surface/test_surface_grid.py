"""The grid engine: theta0 + x d1 + y d2 against closed forms, centre, restore, resume."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.evaluate import evaluate
from landscape.surface import PointEvaluator, SurfaceResult, evaluate_surface
from landscape.surface.grid import PlaneWriter
from tests.surface.surface_models import (
    make_quadratic,
    mean_output,
    quadratic_loss,
    tiny_bn_net,
    tiny_data,
)


def _unit_directions(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    w = model.w
    return [
        {"w": torch.randn(w.shape, generator=gen, dtype=torch.float64).to(w.dtype)}
        for _ in range(2)
    ]


@pytest.mark.parametrize(
    ("xs", "ys"),
    [
        ((-1.0, 2.0, 5), (0.0, 1.0, 3)),
        ((0.0, 1.0, 2), (-0.5, 0.5, 6)),
        ((-1.0, 1.0, 3), (-1.0, 1.0, 3)),
    ],
)
def test_quadratic_surface_matches_closed_form_in_ij_order(xs, ys):
    model, x, y = make_quadratic()
    d1, d2 = _unit_directions(model)
    xg, yg = np.linspace(*xs), np.linspace(*ys)
    measure = PointEvaluator(mean_output, {"train": (x, y)}, batch_size=3)
    result = evaluate_surface(model, [d1, d2], measure, xg, yg)
    assert result.metrics["train_loss"].shape == (len(xg), len(yg))
    expected = np.array(
        [[quadratic_loss(model, model.w + a * d1["w"] + b * d2["w"], x) for b in yg] for a in xg]
    )
    np.testing.assert_allclose(result.metrics["train_loss"], expected, rtol=1e-12, atol=1e-12)
    assert result.done.all()


def test_one_dimensional_slice_matches_closed_form():
    model, x, y = make_quadratic(seed=3)
    d1, _ = _unit_directions(model)
    xg = np.linspace(-2, 0.5, 6)
    result = evaluate_surface(model, [d1], PointEvaluator(mean_output, {"train": (x, y)}), xg)
    expected = [quadratic_loss(model, model.w + a * d1["w"], x) for a in xg]
    assert result.y is None and result.metrics["train_loss"].shape == (6,)
    np.testing.assert_allclose(result.metrics["train_loss"], expected, rtol=1e-12)


def test_curvature_along_a_direction_is_its_rayleigh_quotient():
    # L(theta0 + a d) = L0 + a g.d + a^2/2 d^T H d: the second difference recovers d^T H d.
    model, x, y = make_quadratic(seed=5)
    d1, _ = _unit_directions(model)
    h = 0.25
    r = evaluate_surface(
        model,
        [d1],
        PointEvaluator(mean_output, {"train": (x, y)}),
        np.array([-h, 0, h]),
    ).metrics["train_loss"]
    d = d1["w"].reshape(-1)
    np.testing.assert_allclose(
        (r[0] - 2 * r[1] + r[2]) / h**2, float(d @ model.hessian @ d), rtol=1e-9
    )


@pytest.mark.parametrize("bn_mode", ["eval", "recalibrate"])
def test_centre_point_equals_the_checkpoints_own_metrics(bn_mode):
    model = tiny_bn_net(0)
    x, y = tiny_data()
    d1 = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    d2 = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    measure = PointEvaluator(
        F.cross_entropy, {"train": (x, y)}, batch_size=10, bn_mode=bn_mode, bn_inputs=x
    )
    own = measure(
        model
    )  # (recalibrate mode works on a copy of nothing: the surface restores buffers)
    model2 = tiny_bn_net(0)
    result = evaluate_surface(
        model2,
        [d1, d2],
        measure,
        np.linspace(-1, 1, 3),
        np.linspace(-1, 1, 5),
    )
    assert result.metrics["train_loss"][1, 2] == own["train_loss"]
    assert result.metrics["train_acc"][1, 2] == own["train_acc"]


def test_centre_in_eval_mode_is_plain_evaluate():
    model = tiny_bn_net(1)
    x, y = tiny_data()
    loss, acc = evaluate(model, x, y, F.cross_entropy)
    d = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    result = evaluate_surface(
        model,
        [d],
        PointEvaluator(F.cross_entropy, {"test": (x, y)}),
        np.array([-1.0, 0.0, 1.0]),
    )
    assert result.metrics["test_loss"][1] == loss and result.metrics["test_acc"][1] == acc


@pytest.mark.parametrize("bn_mode", ["eval", "train", "recalibrate"])
def test_model_is_restored_exactly(bn_mode):
    model = tiny_bn_net(2)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = tiny_data()
    d = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    evaluate_surface(
        model,
        [d, d],
        PointEvaluator(F.cross_entropy, {"train": (x, y)}, bn_mode=bn_mode, bn_inputs=x),
        np.linspace(-1, 1, 2),
        np.linspace(-1, 1, 2),
    )
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training and model.bn.training


def test_a_model_in_train_mode_is_measured_with_running_statistics_and_left_as_it_was():
    model = tiny_bn_net(3)
    x, y = tiny_data()
    measure = PointEvaluator(F.cross_entropy, {"train": (x, y)}, batch_size=10)
    in_eval_mode = measure(model)
    model.train()
    assert measure(model) == in_eval_mode
    assert model.training and model.bn.training


def test_plane_writer_writes_theta0_plus_the_combination_and_the_centre_exactly():
    model, _, _ = make_quadratic(seed=5)
    w0 = model.w.detach().clone()
    d1, d2 = _unit_directions(model)
    d1["w"][0, 0] = float("nan")  # a zero coefficient must not touch the weights
    writer = PlaneWriter(model, [d1, d2])
    writer.write([0.0, 0.0])
    assert torch.equal(model.w, w0)
    writer.write([0.0, -0.75])
    np.testing.assert_allclose(model.w.detach().numpy(), (w0 - 0.75 * d2["w"]).numpy(), rtol=1e-15)
    rows = np.array([[0.0, -0.75], [0.0, 0.0]])
    assert torch.equal(writer.points(rows)[0], model.w.detach().reshape(-1))
    writer.write([0.5, 0.25])
    assert torch.isnan(model.w[0, 0]) and torch.isfinite(model.w.reshape(-1)[1:]).all()


def test_resume_computes_only_missing_points_and_matches_a_full_run():
    model, x, y = make_quadratic(seed=7)
    d1, d2 = _unit_directions(model)
    xg, yg = np.linspace(-1, 1, 4), np.linspace(0, 2, 3)
    calls = []

    class Counting(PointEvaluator):
        def __call__(self, m):
            calls.append(1)
            return super().__call__(m)

    measure = Counting(mean_output, {"train": (x, y)})
    full = evaluate_surface(model, [d1, d2], measure, xg, yg)
    partial = SurfaceResult.empty(xg, yg, measure.names)
    partial.done[:2] = True
    partial.metrics["train_loss"][:2] = full.metrics["train_loss"][:2]
    partial.metrics["train_acc"][:2] = full.metrics["train_acc"][:2]
    calls.clear()
    resumed = evaluate_surface(model, [d1, d2], measure, xg, yg, result=partial)
    assert len(calls) == 6
    np.testing.assert_array_equal(resumed.metrics["train_loss"], full.metrics["train_loss"])


def test_on_save_sees_nan_for_points_not_done():
    model, x, y = make_quadratic()
    d1, d2 = _unit_directions(model)
    seen = []
    evaluate_surface(
        model,
        [d1, d2],
        PointEvaluator(mean_output, {"train": (x, y)}),
        np.linspace(-1, 1, 3),
        np.linspace(-1, 1, 3),
        save_every=0.0,
        on_save=lambda r: seen.append((r.done.copy(), r.metrics["train_loss"].copy())),
    )
    done, loss = seen[0]
    assert done.sum() == 1 and np.isnan(loss[~done]).all() and not np.isnan(loss[done]).any()
    assert seen[-1][0].all()


def test_directions_are_matched_by_name_and_refused_when_they_do_not_fit():
    model, x, y = make_quadratic()
    with pytest.raises(ValueError, match="lack parameters"):
        evaluate_surface(
            model,
            [{"v": torch.zeros(6)}],
            PointEvaluator(mean_output, {"train": (x, y)}),
            np.zeros(1),
        )
    with pytest.raises(ValueError, match="do not fit"):
        evaluate_surface(
            model,
            [{"w": torch.zeros(3, 2)}],
            PointEvaluator(mean_output, {"train": (x, y)}),
            np.zeros(1),
        )
