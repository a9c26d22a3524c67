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


def test_report_embeds_every_figure_and_references_no_file(page):
    path, html, figures = page
    links = Links()
    links.feed(html)
    assert links.images == figures
    # Self-contained: every image is inline data and every link an anchor within the page, so
    # the one HTML file can be mailed or moved alone.
    assert links.refs and all(ref.startswith(("data:", "#")) for ref in links.refs), links.refs
    assert "http://" not in html and "https://" not in html  # views offline


def test_checkpoint_table_holds_epoch_phase_lambda1_trace_and_accuracy(page, loaded):
    html = _table_of(page[1], "Curvature and sharpness per checkpoint")
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r"<tr><td>(epoch-\d+-\w+)</td>.*?</tr>", html)
    }
    for record in loaded["all"].hessian:
        row = rows[record.name]
        assert f"<td>{record.meta.epoch}</td><td>{record.meta.phase.upper()}</td>" in row
        assert f"<td>{report.fmt(record.eigenvalues[0])}</td>" in row
        assert report.fmt(record.trace) in row
    surface = next(s for s in loaded["all"].surfaces if s.name == "random_1d")  # of epoch-100-sam
    assert report.fmt(100 * surface.metrics["test_acc"][10]) in rows["epoch-100-sam"]


def _table_of(html: str, caption: str) -> str:
    start = html.index(f"<caption>{caption}")
    return html[start : html.index("</table>", start)]


def test_barrier_table_holds_the_file_attrs_in_words_loss_first_error_in_percent(page, build):
    html = _table_of(page[1], "Barrier heights")
    headings = re.findall(r"<th>(.*?)</th>", html)
    assert headings[:4] == [
        "from (α = 0)",
        "to (α = 1)",
        "train loss barrier, Frankle",
        "train loss barrier, Entezari",
    ]
    assert headings.index("test loss barrier, Entezari") < headings.index(
        "train error barrier (%), Frankle"
    )
    for key, value in build.BARRIERS.items():
        shown = 100 * value if "_error_" in key else value
        assert f"<td>{report.fmt(shown)}</td>" in html


def test_the_report_is_titled_by_its_runs_and_ordered_training_curvature_surfaces_interpolation(
    files, run_dir, tmp_path
):
    sources, jobs = discover.plan(
        [files["all"], run_dir], {"training", "hessian", "surface", "interpolation"}
    )
    jobs = [j for j in jobs if j.kind != "surface" or j.name.endswith("slice")]  # a few are enough
    html = report.write_report(sources, jobs, tmp_path, dpi=20).read_text()
    assert "<h1>landscape report: late-sam</h1>" in html and "all.h5</h1>" not in html
    sections = re.findall(r"<h2>(.*?)</h2>", html)
    assert sections == [
        "Headline numbers",
        "Training",
        "Curvature",
        "Loss surfaces",
        "Interpolation",
    ]
    tables = re.findall(r"<caption>(.*?)</caption>", html)
    assert tables[0] == "Training runs" and tables[-1] == "Analysis settings of every result"
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert captions and not any(
        ".h5" in c or "surface/" in c or "train_loss" in c for c in captions
    )


def test_the_settings_table_gives_split_examples_batchnorm_and_dtype_per_result(page):
    html = _table_of(page[1], "Analysis settings of every result")
    assert re.findall(r"<th>(.*?)</th>", html) == [
        "result",
        "checkpoint",
        "split",
        "examples",
        "BatchNorm",
        "dtype",
        "seed",
    ]
    rows = re.findall(r"<tr><td>(.*?)</td>", html)
    assert any(r.startswith("curvature: ") for r in rows) and any(
        r.startswith("interpolation: ") for r in rows
    )


def test_training_run_table_holds_the_switch_and_final_accuracy(page, run_dir):
    from landscape.plot import results

    log = results.read_training_log(run_dir)
    assert "<tr><td>late-sam</td><td>12</td><td>8</td>" in page[1]
    assert report.fmt(100 * log.columns["test_acc"][-1]) in page[1]


def test_experiment_table_holds_each_arm_with_mean_and_spread(page, build):
    html = page[1]
    for label, _, _, _, acc, acc_std, lam, lam_std in build.EXPERIMENT_ARMS:
        assert (
            f"<tr><td>{label}</td><td>2</td>"
            f"<td>{report.fmt(100 * acc)} ± {report.fmt(100 * acc_std, 2)}</td>" in html
        )
        assert f"<td>{report.fmt(lam)} ± {report.fmt(lam_std, 2)}</td>" in html


def test_one_checkpoint_named_by_two_paths_is_one_row(loaded):
    from dataclasses import replace

    result = loaded["hessian"]
    moved = [
        replace(r, meta=replace(r.meta, checkpoint="/elsewhere/" + r.meta.checkpoint))
        for r in result.hessian
    ]
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


def test_experiment_verdicts_table_shows_each_claim_with_its_rule_and_numbers(tmp_path):
    import h5py

    from landscape.plot import results
    from landscape.results.experiment import ExperimentResult

    verdict = {
        "claim": "late SAM reaches full SAM's flatness",
        "rule": "flatness-gap",
        "verdict": "partly",
        "numbers": "late-sam t0=25 (900 SAM steps): gap closed 60 [20, 90] %, 4 seeds",
    }
    stored = ExperimentResult(
        "late-sam", {}, "digits", "mlp", 50, 0.05, [0, 1], "", summary=[{"arm": "sgd"}],
        verdicts=[verdict],
    )  # fmt: skip
    with h5py.File(tmp_path / "x.h5", "w") as f:
        stored.write(f.create_group("experiment/late-sam"))
    html = report.tables_html([results.read_result_file(tmp_path / "x.h5")])
    assert "verdicts on the paper&#x27;s claims" in html
    cells = [verdict[k] for k in ("verdict", "claim", "rule", "numbers")]
    assert "<tr>" + "".join(f"<td>{html_escape(c)}</td>" for c in cells) + "</tr>" in html


def html_escape(text: str) -> str:
    import html

    return html.escape(text)
