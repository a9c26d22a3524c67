"""The report's interactive 3-D view of each 2-D surface: the values it embeds, no URL, and in
a real headless Chromium a drawn canvas and no script error."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape.cli import main
from landscape.plot.results import read_result_file
from landscape.plot.view3d import views_html
from tests.plot import conftest as build

# A real browser start takes seconds: those tests run in the slow pass (.ci/run installs it).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> Path:
    return build.write_result_file(
        tmp_path_factory.mktemp("view3d") / "r.h5",
        build.write_surface_2d,  # 15 x 11, the last rows not done
        build.write_surface_1d,
    )


def embedded(page: str) -> list[dict]:
    return [json.loads(html.unescape(m)) for m in re.findall(r"data-surface='([^']*)'", page)]


def test_each_2d_surface_embeds_its_values_with_null_where_not_computed(result):
    (view,) = embedded(views_html([read_result_file(result)]))  # the 1-D slice has none
    with h5py.File(result, "r") as f:
        g = f["surface/random_2d"]
        np.testing.assert_array_equal(view["x"], g["x"][()])
        np.testing.assert_array_equal(view["y"], g["y"][()])
        stored = g["test_acc"][()]
    got = np.array(
        [[np.nan if v is None else v for v in row] for row in view["values"]["test_acc"]]
    )
    np.testing.assert_array_equal(got, stored)
    assert view["metric"] == "train_loss" and set(view["values"]) >= {"train_loss", "test_loss"}


def test_the_view_fetches_nothing(result):
    page = views_html([read_result_file(result)])
    assert not re.search(r"https?://|src=|import\(|fetch\(|XMLHttpRequest", page)


def chromium(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"]
    return subprocess.run(
        [CHROMIUM, *flags, "--enable-logging=stderr", "--v=0", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def script_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line and "Uncaught" in line]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_the_console_check_sees_a_script_error(tmp_path):  # the check below can fail
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefined_function();</script></body></html>")
    assert script_errors(chromium("--dump-dom", page.as_uri()).stderr)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_the_report_draws_every_surface_in_chromium_without_a_script_error(result, tmp_path):
    assert main(["report", str(result), "--out", str(tmp_path), "--only", "surface"]) == 0
    run = chromium("--dump-dom", (tmp_path / "report.html").as_uri())
    assert script_errors(run.stderr) == []
    assert not re.search(r"<html[^>]*data-view3d-error", run.stdout)
    # 14 x 10 quadrilaterals, less those touching a point not computed (rows 12-14, half of 11)
    assert re.findall(r'data-quads="(\d+)"', run.stdout) == ["104"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_the_drawn_canvas_is_not_blank(result, tmp_path):
    pil = pytest.importorskip("PIL.Image")
    page = tmp_path / "view.html"
    page.write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        + views_html([read_result_file(result)])
        + "</body></html>"
    )
    shot = tmp_path / "shot.png"
    run = chromium(
        "--hide-scrollbars", "--window-size=600,460", f"--screenshot={shot}", page.as_uri()
    )
    assert shot.is_file(), run.stderr[-500:]
    pixels = np.asarray(pil.open(shot).convert("RGB"))[:420, :560]
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 50  # a shaded surface, not an empty canvas
