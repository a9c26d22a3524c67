"""landscape plot and landscape report from the command line."""

import importlib.util
from pathlib import Path

import h5py
import pytest

from landscape import cli

# The result-file builders of tests/plot (plain h5py, per docs/file-format.md), loaded by path.
_spec = importlib.util.spec_from_file_location(
    "plot_result_files", Path(__file__).parents[1] / "plot" / "conftest.py"
)
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    return {
        "sgd": build.write_result_file(
            folder / "sgd.h5",
            lambda f: build.write_surface_1d(f, scale=3.0),
            build.write_interpolation,
        ),
        "sam": build.write_result_file(
            folder / "sam.h5", build.write_surface_1d, build.write_hessian
        ),
        "run": build.write_run(folder / "checkpoints" / "late-sam"),
    }


def _plot(tmp_path, capsys, *argv):
    out = tmp_path / "figs"
    code = cli.main(["plot", *map(str, argv), "--out", str(out), "--dpi", "30"])
    captured = capsys.readouterr()
    return code, out, [Path(line) for line in captured.out.splitlines()], captured.err


def test_plot_writes_every_figure_of_a_file_and_prints_their_paths(inputs, tmp_path, capsys):
    code, out, printed, _ = _plot(tmp_path, capsys, inputs["sgd"])
    assert code == 0
    assert sorted(p.name for p in printed) == [
        "sgd-interpolation-sgd_to_sam.png",
        "sgd-surface-random_1d-slice.png",
    ]
    assert sorted(out.iterdir()) == sorted(printed)


def test_plot_of_a_run_folder_draws_its_training_curves(inputs, tmp_path, capsys):
    code, out, printed, _ = _plot(tmp_path, capsys, inputs["run"], "--format", "png,svg")
    assert code == 0 and [p.name for p in printed] == [
        "late-sam-training.png",
        "late-sam-training.svg",
    ]
    assert printed[1].read_text().lstrip().startswith("<?xml")


def test_several_files_also_give_comparison_figures(inputs, tmp_path, capsys):
    code, _, printed, _ = _plot(tmp_path, capsys, inputs["sgd"], inputs["sam"], "--only", "compare")
    assert code == 0 and [p.name for p in printed] == ["compare-surface1d.png"]


def test_only_restricts_the_figures_to_one_kind(inputs, tmp_path, capsys):
    code, _, printed, _ = _plot(
        tmp_path, capsys, inputs["sgd"], "--only", "interpolation", "--format", "pdf"
    )
    assert code == 0 and [p.name for p in printed] == ["sgd-interpolation-sgd_to_sam.pdf"]
    assert printed[0].read_bytes().startswith(b"%PDF")


def _no_results(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        build.root(f)
    return [path]


@pytest.mark.parametrize(
    "make_args, message",
    [
        (_no_results, "holds no landscape results"),
        (lambda p: [p / "notes.h5"] if (p / "notes.h5").write_text("hello") else [], "not an HDF5"),
        (lambda p: [p / "missing.h5"], "does not exist"),
        (
            lambda p: [p / "missing-run"] if (p / "missing-run").mkdir() is None else [],
            "no metrics.jsonl",
        ),
    ],
    ids=["no-results", "not-hdf5", "missing", "run-without-metrics"],
)
def test_bad_inputs_fail_with_one_line_and_write_nothing(
    inputs, tmp_path, capsys, make_args, message
):
    code, out, printed, err = _plot(tmp_path, capsys, inputs["sgd"], *make_args(tmp_path))
    assert code == 1 and not printed and not out.exists()
    assert (
        err.startswith("landscape: error:")
        and message in err
        and len(err.strip().splitlines()) == 1
    )


@pytest.mark.parametrize(
    "flags, message",
    [(["--only", "surfaces"], "unknown --only kind"), (["--format", "jpg"], "unknown format")],
)
def test_bad_flags_fail_with_one_line_and_write_nothing(inputs, tmp_path, capsys, flags, message):
    code, out, printed, err = _plot(tmp_path, capsys, inputs["sgd"], *flags)
    assert code == 1 and not out.exists() and message in err and len(err.strip().splitlines()) == 1


def test_only_a_kind_the_inputs_lack_is_an_error(inputs, tmp_path, capsys):
    code, out, _, err = _plot(tmp_path, capsys, inputs["sgd"], "--only", "escape")
    assert code == 1 and "nothing to plot" in err and not out.exists()


def test_report_writes_one_html_page_and_prints_its_path(inputs, tmp_path, capsys):
    out = tmp_path / "report"
    code = cli.main(
        [
            "report",
            str(inputs["sam"]),
            str(inputs["run"]),
            "--out",
            str(out),
            "--dpi",
            "30",
            "--only",
            "training,surface",
        ]
    )
    printed = capsys.readouterr().out.split()
    assert code == 0 and printed == [str(out / "report.html")]
    html = (out / "report.html").read_text()
    assert html.count("<img") == 2 and "epoch-100-sam" in html and "late-sam" in html
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_report_of_a_non_result_file_fails_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "x.h5").write_text("not hdf5")
    code = cli.main(["report", str(tmp_path / "x.h5"), "--out", str(tmp_path / "report")])
    assert code == 1 and not (tmp_path / "report").exists()
    assert capsys.readouterr().err.startswith("landscape: error:")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The --out folder of `landscape train` (two runs) and an experiment folder."""
    root = tmp_path_factory.mktemp("folders")
    build.write_run(root / "runs" / "digits-mlp-s0")
    build.write_run(root / "runs" / "digits-mlp-sam8-s0", switch=None)
    experiment = root / "experiments" / "late-sam-digits-mlp"
    experiment.mkdir(parents=True)
    build.write_result_file(experiment / "result.h5", build.write_experiment)
    build.write_run(experiment / "checkpoints" / "sgd-s0")
    return {"runs": root / "runs", "experiment": experiment, "experiments": root / "experiments"}


@pytest.mark.parametrize(
    "folder, only, expected",
    [
        (
            "runs",
            "training,compare",
            {
                "digits-mlp-s0-training.png",
                "digits-mlp-sam8-s0-training.png",
                "compare-training.png",
            },
        ),
        (
            "experiment",
            "experiment,training",
            {"result-experiment-late-sam.png", "sgd-s0-training.png"},
        ),
        (
            "experiments",
            "experiment,training",
            {"result-experiment-late-sam.png", "sgd-s0-training.png"},
        ),
    ],
)
def test_plot_of_a_folder_of_runs_or_an_experiment_folder_draws_everything_in_it(
    folders, tmp_path, capsys, folder, only, expected
):
    code, _, printed, err = _plot(tmp_path, capsys, folders[folder], "--only", only)
    assert code == 0, err
    assert expected == {p.name for p in printed}


def test_report_of_a_folder_of_runs_tables_every_run(folders, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["report", str(folders["runs"]), "--out", str(out), "--dpi", "30", "--only", "compare"]
    assert cli.main(argv) == 0  # the tables are always complete
    html = (out / "report.html").read_text()
    assert "digits-mlp-s0" in html and "digits-mlp-sam8-s0" in html
