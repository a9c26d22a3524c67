"""The measure registry behind `landscape sharpness --measure` and the curvature measures."""

import pytest

from landscape.sharpness import MEASURES, compute_measure, dataset_name
from tests.sharpness.quadratic import Quadratic, dummy_data, mean_loss, spd_matrix

EIGENVALUES = [5.0, 3.0, 2.0, 1.0]


def test_every_cli_measure_name_is_registered():
    from landscape.cli.sharpness import measure_names

    assert measure_names() == list(MEASURES)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("top-eigenvalue", max(EIGENVALUES)),
        ("trace", sum(EIGENVALUES)),
        ("worst-case", 0.1**2 * max(EIGENVALUES) / 2),
    ],
)
def test_measures_through_the_registry_on_a_quadratic(name, expected):
    hessian, _ = spd_matrix(EIGENVALUES)
    x, y = dummy_data()
    result = compute_measure(
        name, Quadratic(hessian), mean_loss, x, y, rho=0.1, steps=40, tol=1e-8, rel_stderr=1e-6
    )
    assert result.value == pytest.approx(expected, rel=1e-6)
    assert result.measure == dataset_name(name)


def test_adaptive_measures_take_their_own_radius():
    hessian, _ = spd_matrix(EIGENVALUES)
    x, y = dummy_data()
    result = compute_measure(
        "adaptive-worst-case",
        Quadratic(hessian),
        mean_loss,
        x,
        y,
        rho=0.1,
        adaptive_rho=0.7,
        steps=2,
    )
    assert result.params["rho"] == 0.7 and result.params["adaptive"]
