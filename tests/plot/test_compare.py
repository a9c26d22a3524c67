"""Several results on one axis with a legend naming each."""

import numpy as np
import pytest

from landscape.plot import compare, results


@pytest.fixture(scope="module")
def variants(build, tmp_path_factory):
    """SGD, late-SAM and full-SAM stand-ins: the same shapes at different sharpness."""
    folder = tmp_path_factory.mktemp("variants")
    out = {}
    for name, scale in (("sgd", 3.0), ("late-sam", 1.5), ("full-sam", 1.0)):
        path = build.write_result_file(
            folder / f"{name}.h5",
            lambda f, s=scale: build.write_surface_1d(f, scale=s),
            lambda f, s=scale: build.write_interpolation(f, bump=0.2 * s),
        )
        out[name] = results.read_result_file(path)
    return out


def test_slices_of_several_files_share_one_axis_with_a_legend(variants):
    items = [(name, r.surfaces[0]) for name, r in variants.items()]
    fig = compare.plot_compare_slices(items)
    top = fig.axes[0]
    lines = [line for line in top.get_lines()]
    assert [line.get_label() for line in lines] == ["sgd", "late-sam", "full-sam"]
    np.testing.assert_allclose(lines[0].get_ydata(), items[0][1].metrics["train_loss"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["sgd", "late-sam", "full-sam"]
    assert len({line.get_color() for line in lines}) == 3


def test_interpolations_of_several_files_share_one_axis(variants):
    items = [(name, r.interpolations[0]) for name, r in variants.items()]
    fig = compare.plot_compare_interpolations(items)
    labels = [
        line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")
    ]
    assert labels == ["sgd", "late-sam", "full-sam"]
    assert fig.axes[1].get_ylabel() == "test error (%)"


def test_training_runs_are_compared_with_each_switch_in_the_run_colour(build, tmp_path):
    late = results.read_training_log(build.write_run(tmp_path / "late", switch=8))
    sgd = results.read_training_log(build.write_run(tmp_path / "sgd", switch=None))
    fig = compare.plot_compare_training([("late", late), ("sgd", sgd)])
    top = fig.axes[0]
    switches = [line for line in top.get_lines() if line.get_gid() == "switch"]
    late_line = next(line for line in top.get_lines() if line.get_label() == "late")
    assert [s.get_xdata()[0] for s in switches] == [8] and switches[
        0
    ].get_color() == late_line.get_color()


def test_hessian_runs_from_several_files_are_separate_lines(loaded):
    fig = compare.plot_compare_hessian(
        [("a", loaded["hessian"].hessian), ("b", loaded["hessian"].hessian[:4])]
    )
    gids = {line.get_gid() for line in fig.axes[0].get_lines()}
    assert {"lambda1-a", "lambda1-b"} <= gids
