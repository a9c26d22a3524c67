"""track/<name>: drawn against the training step (with 2/lr), in the report, shown by info."""

import json

import numpy as np
import pytest

from landscape import cli, store
from landscape.plot import discover, report, track
from landscape.plot.results import read_result_file
from landscape.results import Provenance
from landscape.results.track import TrackResult


def _track_file(path, lr=True):
    result = TrackResult(
        Provenance(checkpoint="", checkpoint_sha256="", arch="Net", samples=32),
        parameters={"every": 10, "requested": "lambda1,trace"},
    )
    for step, (lam, tr) in zip((10, 20, 30), ((2.0, 9.0), (5.0, 12.0), (8.0, 15.0))):
        result.append(step, {"lambda1": lam, "trace": tr, **({"lr": 0.25} if lr else {})})
    with store.transaction(path) as f:
        result.write(store.replace_group(f, "track/run"))
    return path


def test_lambda1_is_drawn_against_the_step_with_the_two_over_lr_line(tmp_path):
    (loaded,) = read_result_file(_track_file(tmp_path / "t.h5")).tracks
    fig = track.plot_track(loaded)
    ax = fig.axes[0]
    line = next(line for line in ax.get_lines() if line.get_gid() == "lambda1")
    np.testing.assert_array_equal(line.get_xdata(), [10, 20, 30])
    edge = next(line for line in ax.get_lines() if line.get_gid() == "two-over-lr")
    np.testing.assert_array_equal(edge.get_ydata(), [8.0, 8.0, 8.0])
    assert len(fig.axes) == 2  # lambda1 and trace


def test_without_a_learning_rate_there_is_no_two_over_lr_line(tmp_path):
    (loaded,) = read_result_file(_track_file(tmp_path / "t.h5", lr=False)).tracks
    gids = [line.get_gid() for line in track.plot_track(loaded).axes[0].get_lines()]
    assert "two-over-lr" not in gids


def test_plot_plans_one_track_figure_and_report_has_its_table(tmp_path):
    path = _track_file(tmp_path / "t.h5")
    _, jobs = discover.plan([path], {"track"})
    assert [job.kind for job in jobs] == ["track"]
    html = report.tables_html([read_result_file(path)])
    assert "Sharpness along training" in html and "10–30 (3)" in html


def test_a_run_folder_brings_its_track_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    _track_file(run / "track.h5")
    assert discover.expand_inputs([run]) == [run, run / "track.h5"]


def test_info_shows_the_steps_and_the_last_values(tmp_path, capsys):
    path = _track_file(tmp_path / "t.h5")
    assert cli.main(["info", str(path), "--json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)["results"]
    assert group["group"] == "track/run"
    assert group["values"]["steps"] == {"min": 10, "max": 30, "num": 3}
    assert group["values"]["lambda1_last"] == pytest.approx(8.0)
