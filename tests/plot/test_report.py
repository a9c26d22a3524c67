"""The HTML report: self-contained, every figure, the numbers from the files."""

import re
from html.parser import HTMLParser

import pytest

from landscape.plot import discover, report


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href"):
                self.refs.append(value)
        self.images += tag == "img"


@pytest.fixture(scope="module")
def page(files, run_dir, tmp_path_factory):
    # A few figure kinds keep the test fast; the tables always cover every source.
    sources, jobs = discover.plan([files["all"], run_dir], {"interpolation", "escape", "training"})
    out = tmp_path_factory.mktemp("report")
    path = report.write_report(sources, jobs, out, dpi=30)
    return path, path.read_text(), len(jobs)


def test_report_embeds_every_figure_and_references_no_missing_file(page):
    path, html, figures = page
    links = Links()
    links.feed(html)
    assert links.images == figures
    for ref in links.refs:
        assert ref.startswith("data:") or (path.parent / ref).exists(), ref
    assert "http://" not in html and "https://" not in html  # views offline


def test_checkpoint_table_holds_epoch_phase_lambda1_trace_and_accuracy(page, loaded):
    html = page[1]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>(epoch-\d+-\w+)</td>.*?</tr>", html)}
    for record in loaded["all"].hessian:
        row = rows[record.name]
        assert f"<td>{record.meta.epoch}</td><td>{record.meta.phase.upper()}</td>" in row
        assert f"<td>{report.fmt(record.eigenvalues[0])}</td>" in row
        assert report.fmt(record.trace) in row
    surface = next(s for s in loaded["all"].surfaces if s.name == "random_1d")  # of epoch-100-sam
    assert report.fmt(100 * surface.metrics["test_acc"][10]) in rows["epoch-100-sam"]


def test_barrier_table_holds_the_file_attrs(page, build):
    html = page[1]
    for key, value in build.BARRIERS.items():
        assert f"<td>{report.fmt(value)}</td>" in html
        assert key.removeprefix("barrier_").replace("_", " ") in html


def test_training_run_table_holds_the_switch_and_final_accuracy(page, run_dir):
    from landscape.plot import results

    log = results.read_training_log(run_dir)
    assert "<tr><td>late-sam</td><td>12</td><td>8</td>" in page[1]
    assert report.fmt(100 * log.columns["test_acc"][-1]) in page[1]


def test_experiment_table_holds_each_arm_with_mean_and_spread(page, build):
    html = page[1]
    for label, _, _, _, acc, acc_std, lam, lam_std in build.EXPERIMENT_ARMS:
        assert f"<tr><td>{label}</td><td>2</td><td>{report.fmt(100 * acc)} ± {report.fmt(100 * acc_std, 2)}</td>" in html
        assert f"<td>{report.fmt(lam)} ± {report.fmt(lam_std, 2)}</td>" in html


def test_one_checkpoint_named_by_two_paths_is_one_row(loaded):
    from dataclasses import replace

    result = loaded["hessian"]
    moved = [replace(r, meta=replace(r.meta, checkpoint="/elsewhere/" + r.meta.checkpoint)) for r in result.hessian]
    rows = report.checkpoint_rows([result, replace(result, hessian=moved)])
    assert len(rows) == len(result.hessian)


def test_experiment_gap_table_shows_the_paired_share_closed_with_its_interval(build, tmp_path):
    from landscape.plot import results
    from tests.plot.test_experiment import _with_gaps

    path = build.write_result_file(tmp_path / "x.h5", _with_gaps)
    html = report.tables_html([results.read_result_file(path)])
    assert "share of the SGD → full-SAM gap closed" in html
    assert "<tr><td>late-sam t0=25</td><td>900</td><td>60 [50, 70]</td></tr>" in html
    assert "<td>full-sam</td><td>3600</td>" not in html
