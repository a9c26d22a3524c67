"""Directions: filter normalisation (Li et al. 2018), 1-D policy, seeds by name, PCA, between."""

import pytest
import torch

from landscape.surface.directions import (
    between_directions,
    dot,
    norm_of,
    normalize_direction,
    pca_directions,
    random_direction,
)
from tests.surface.surface_models import tiny_bn_net


def _weights(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return {
        "conv.weight": torch.randn(4, 2, 3, 3, dtype=dtype),
        "conv.bias": torch.randn(4, dtype=dtype),
        "bn.weight": torch.rand(4, dtype=dtype) + 0.5,
        "fc.weight": torch.randn(3, 4, dtype=dtype),
        "fc.bias": torch.zeros(3, dtype=dtype),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_filter_normalised_directions_have_the_per_filter_norms_of_the_weights(dtype):
    w = _weights(dtype=dtype)
    d = random_direction(w, seed=3, norm="filter")
    for name in ("conv.weight", "fc.weight"):
        d_norms = d[name].reshape(d[name].shape[0], -1).norm(dim=1)
        w_norms = w[name].reshape(w[name].shape[0], -1).norm(dim=1)
        torch.testing.assert_close(d_norms, w_norms, rtol=1e-6, atol=0)


def test_biasbn_policy_zeroes_one_dimensional_parameters():
    d = random_direction(_weights(), seed=0, norm="filter", ignore="biasbn")
    for name in ("conv.bias", "bn.weight", "fc.bias"):
        assert torch.count_nonzero(d[name]) == 0
    assert torch.count_nonzero(d["conv.weight"]) == d["conv.weight"].numel()


def test_without_biasbn_each_entry_of_a_1d_parameter_is_its_own_filter():
    w = _weights()
    d = random_direction(w, seed=0, norm="filter", ignore="none")
    for name in ("conv.bias", "bn.weight", "fc.bias"):
        torch.testing.assert_close(d[name].abs(), w[name].abs())


def test_layer_normalisation_matches_whole_tensor_norms():
    w = _weights()
    d = random_direction(w, seed=1, norm="layer", ignore="none")
    for name in ("conv.weight", "conv.bias", "fc.weight"):
        torch.testing.assert_close(d[name].norm(), w[name].norm(), rtol=1e-6, atol=0)


def test_no_normalisation_leaves_a_standard_gaussian():
    w = {"big": torch.zeros(200, 500)}
    d = random_direction(w, seed=0, norm="none")
    assert abs(d["big"].mean()) < 0.01 and abs(d["big"].std() - 1) < 0.01


def test_a_direction_depends_on_names_and_seed_not_on_order():
    w = _weights()
    reordered = dict(reversed(list(w.items())))
    a = random_direction(w, seed=5)
    b = random_direction(reordered, seed=5)
    assert all(torch.equal(a[n], b[n]) for n in w)
    c = random_direction(w, seed=6)
    y = random_direction(w, seed=5, axis="y")
    assert not torch.equal(a["conv.weight"], c["conv.weight"])
    assert not torch.equal(a["conv.weight"], y["conv.weight"])


def test_same_direction_in_float32_and_float64():
    a = random_direction(_weights(dtype=torch.float64), seed=2)
    b = random_direction({k: v.float() for k, v in _weights(dtype=torch.float64).items()}, seed=2)
    for n in a:
        torch.testing.assert_close(a[n].float(), b[n], rtol=1e-5, atol=1e-6)


def test_zero_weight_filters_get_zero_direction():
    w = {"conv.weight": torch.zeros(2, 3, 3, 3)}
    w["conv.weight"][1] = 1.0
    d = random_direction(w, seed=0)
    assert torch.count_nonzero(d["conv.weight"][0]) == 0
    torch.testing.assert_close(d["conv.weight"][1].norm(), w["conv.weight"][1].norm())


def test_normalize_refuses_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        normalize_direction({"a": torch.zeros(2, 2)}, {"a": torch.zeros(2, 3)})


def test_between_spans_a_to_b_with_an_orthogonal_second_axis_of_equal_length():
    a = {n: p.detach().clone() for n, p in tiny_bn_net(0).named_parameters()}
    b = {n: p.detach().clone() for n, p in tiny_bn_net(1).named_parameters()}
    dx, dy = between_directions(a, b, seed=0)
    for n in a:
        assert torch.equal(dx[n], b[n] - a[n])
    assert abs(dot(dx, dy)) < 1e-5 * norm_of(dx) ** 2
    assert norm_of(dy) == pytest.approx(norm_of(dx), rel=1e-5)


def test_between_identical_checkpoints_is_refused():
    a = {n: p.detach() for n, p in tiny_bn_net(0).named_parameters()}
    with pytest.raises(ValueError, match="identical"):
        between_directions(a, a, seed=0)


def _planar_trajectory(dtype=torch.float64):
    """Checkpoints w_t = c + u_t e1 + v_t e2 for orthonormal e1, e2: PCA must recover them."""
    torch.manual_seed(0)
    center = {
        "a.weight": torch.randn(5, 4, dtype=dtype),
        "b.weight": torch.randn(3, 2, dtype=dtype),
        "a.bias": torch.randn(5, dtype=dtype),
    }
    q, _ = torch.linalg.qr(torch.randn(26, 2, dtype=dtype))  # 26 = 20 + 6 matrix entries
    u = torch.tensor([-3.0, -2.0, -1.0, 0.5, 0.0], dtype=dtype)
    v = torch.tensor([0.3, -0.4, 0.2, -0.1, 0.0], dtype=dtype)
    traj = []
    for ut, vt in zip(u, v):
        flat = ut * q[:, 0] + vt * q[:, 1]
        state = {
            "a.weight": center["a.weight"] + flat[:20].view(5, 4),
            "b.weight": center["b.weight"] + flat[20:].view(3, 2),
            "a.bias": center["a.bias"] + 7.0,
        }  # 1-D: ignored by the biasbn policy
        traj.append(state)
    return center, traj, u, v


def test_pca_recovers_a_planar_trajectory():
    center, traj, u, v = _planar_trajectory()
    plane = pca_directions(center, traj)
    assert sum(plane.explained_variance_ratio) == pytest.approx(1.0)
    assert plane.explained_variance_ratio[0] > plane.explained_variance_ratio[1]
    assert norm_of(plane.x) == pytest.approx(1.0) and norm_of(plane.y) == pytest.approx(1.0)
    assert abs(dot(plane.x, plane.y)) < 1e-12
    assert torch.count_nonzero(plane.x["a.bias"]) == 0
    # Coordinates reproduce the checkpoints' matrix parameters exactly.
    for t, state in enumerate(traj):
        cx, cy = plane.coordinates[t].tolist()
        for n in ("a.weight", "b.weight"):
            torch.testing.assert_close(center[n] + cx * plane.x[n] + cy * plane.y[n], state[n])
    # Sign convention: the first checkpoint lies on the negative side of both axes.
    assert plane.coordinates[0, 0] <= 0 and plane.coordinates[0, 1] <= 0
    # The ignored biases are what keeps the checkpoints off the plane.
    torch.testing.assert_close(
        plane.distance_to_plane[:4], torch.full((4,), 7.0 * 5**0.5, dtype=torch.float64)
    )


def test_pca_needs_two_dimensions():
    center, traj, _, _ = _planar_trajectory()
    with pytest.raises(ValueError, match="at least two"):
        pca_directions(center, traj[:1])
    line = [{n: center[n] + s for n in center} for s in (1.0, 2.0, 3.0)]
    with pytest.raises(ValueError, match="fewer than two"):
        pca_directions(center, line, ignore="none")


def test_hessian_directions_are_the_top_eigenvectors_of_a_known_quadratic():
    pytest.importorskip("landscape.curvature")
    from landscape.surface.directions import hessian_directions
    from tests.surface.surface_models import make_quadratic, mean_output

    model, x, y = make_quadratic(seed=2)
    dx, dy, eigenvalues = hessian_directions(model, mean_output, x, y, batch_size=4, tol=1e-10)
    values, vectors = torch.linalg.eigh(model.hessian)
    assert eigenvalues == pytest.approx(values.flip(0)[:2].tolist(), rel=1e-8)
    for d, k in ((dx, -1), (dy, -2)):
        assert abs(float(d["w"].reshape(-1) @ vectors[:, k])) == pytest.approx(1.0, rel=1e-8)


@pytest.mark.parametrize("curvature", ["ggn", "fisher"])
def test_hessian_directions_of_another_curvature_are_its_dense_top_eigenvectors(curvature):
    pytest.importorskip("landscape.curvature")
    from landscape.surface.directions import hessian_directions
    from tests.curvature.test_gauss_newton import dense_fisher, dense_ggn
    from tests.curvature.tiny_models import loss_fn, problem

    model, x, y = problem("mlp")
    dx, dy, eigenvalues = hessian_directions(
        model, loss_fn, x, y, batch_size=7, tol=1e-10, curvature=curvature
    )
    dense = (dense_ggn if curvature == "ggn" else dense_fisher)(model, x, y)
    values, vectors = torch.linalg.eigh(dense)
    assert eigenvalues == pytest.approx(values.flip(0)[:2].tolist(), rel=1e-6)
    for d, k in ((dx, -1), (dy, -2)):
        flat = torch.cat([d[n].reshape(-1) for n, _ in model.named_parameters()])
        assert abs(float(flat @ vectors[:, k])) == pytest.approx(1.0, abs=1e-6)
