"""Which figures a set of inputs gives, and their names."""

import pytest

from landscape.errors import UserError
from landscape.plot import FIGURE_KINDS, discover


def test_one_file_with_every_kind_lists_every_figure_family(files, run_dir):
    _, jobs = discover.plan([files["all"], run_dir])
    names = {job.name for job in jobs}
    expected = {
        "all-surface-random_1d-slice",
        "all-surface-random_2d-contour-train_loss",
        "all-surface-random_2d-filled-test_acc",
        "all-surface-pca-3d-train_loss",
        "all-interpolation-sgd_to_sam",
        "all-hessian-epochs",
        "all-hessian-density",
        "all-hessian-density-epoch-080-sgd",
        "all-sharpness-measures",
        "all-sharpness-average",
        "all-escape-epoch-080-sgd",
        "all-track-run",
        "late-sam-training",
        "compare-training",
    } - {"compare-training"}  # one run only: nothing to compare
    assert expected <= names
    assert not any(name.startswith("compare-") for name in names)
    assert {job.kind for job in jobs} == set(FIGURE_KINDS) - {"compare"}


def test_several_files_add_comparison_figures(files):
    _, jobs = discover.plan([files["surface1d"], files["all"], files["interpolation"]])
    names = {job.name for job in jobs}
    assert {"compare-surface1d", "compare-interpolation"} <= names


def test_only_keeps_the_requested_kinds(files):
    _, jobs = discover.plan([files["all"]], discover.parse_only("hessian,escape"))
    assert {job.kind for job in jobs} == {"hessian", "escape"}


def test_unknown_only_kind_is_refused_with_the_list_of_kinds():
    with pytest.raises(UserError, match="choose from surface, interpolation"):
        discover.parse_only("surfaces")


def test_inputs_with_the_same_name_get_distinct_figure_names(files, build, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    copy = build.write_result_file(other / "surface1d.h5", build.write_surface_1d)
    _, jobs = discover.plan([files["surface1d"], copy])
    names = [job.name for job in jobs if job.kind == "surface"]
    assert len(names) == len(set(names)) == 2
