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


def test_a_registered_measure_is_a_choice_of_the_command_and_part_of_all(monkeypatch):
    from landscape.cli.sharpness import selected_measures
    from landscape.sharpness import registry

    monkeypatch.setattr(registry, "MEASURES", dict(registry.MEASURES))
    registry.register_measure(
        registry.MeasureSpec("loss-gap", "math:fsum", ("batch_size",), "test measure")
    )
    from landscape import cli

    parser = cli.build_parser()[1]["sharpness"]
    assert parser.parse_args(["c.pt", "--measure", "loss-gap"]).measure == ["loss-gap"]
    assert "loss-gap" in selected_measures(["all"])


def test_a_measure_name_is_registered_once():
    from landscape.sharpness.registry import MeasureSpec, register_measure

    with pytest.raises(ValueError, match="exists already"):
        register_measure(MeasureSpec("trace", "math:fsum", (), "again"))


def test_the_registry_is_read_without_importing_torch():
    import subprocess
    import sys

    code = "import sys, landscape.sharpness.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "name, options, radius",
    [
        ("adaptive-worst-case-linf", {"rho": 0.1, "linf_rho": 0.002, "adaptive_rho": 0.5}, 0.002),
        ("adaptive-worst-case-linf", {"rho": 0.1, "adaptive_rho": 0.5}, 0.5),
        ("worst-case", {"rho": 0.1, "adaptive_rho": 0.5, "linf_rho": 0.002}, 0.1),
    ],
)
def test_each_measure_takes_its_own_radius_option(name, options, radius):
    assert MEASURES[name].arguments(options)["rho"] == radius
