"""The one registry mechanism: measures, curvatures and direction kinds declared torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from landscape import registry


def test_every_vocabulary_is_listed_without_importing_torch():
    code = (
        "import sys\n"
        "from landscape.registry import CURVATURE_KINDS, DIRECTION_KINDS\n"
        "from landscape.sharpness.registry import MEASURES\n"
        "print(sorted(CURVATURE_KINDS), sorted(DIRECTION_KINDS), len(MEASURES),"
        " 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("] ")[:2] == [
        "['fisher', 'fisher-mc', 'ggn', 'hessian'",
        "['between', 'hessian', 'pca', 'random'",
    ]
    assert out.stdout.strip().endswith("9 False")


@pytest.fixture
def extra_curvature():
    kind = registry.register_curvature(
        registry.CurvatureKind("ggn-again", "GGN", "landscape.curvature.gauss_newton:GGNOperator")
    )
    yield kind
    del registry.CURVATURE_KINDS[kind.name]


def test_a_registered_curvature_is_a_choice_of_the_command_and_resolves_to_its_operator(
    extra_curvature,
):
    from landscape import cli
    from landscape.curvature.gauss_newton import CURVATURES, GGNOperator

    assert CURVATURES["ggn-again"] is GGNOperator
    parser = cli.build_parser()[1]["hessian"]
    assert parser.parse_args(["c.pt", "--curvature", "ggn-again"]).curvature == "ggn-again"


@pytest.mark.parametrize(
    ("register", "spec"),
    [
        (registry.register_curvature, registry.CurvatureKind("ggn", "again", "math:fsum")),
        (registry.register_direction_kind, registry.DirectionKind("pca", "again", "math:fsum")),
    ],
)
def test_a_name_is_registered_once(register, spec):
    with pytest.raises(ValueError, match="exists already"):
        register(spec)


def test_a_reference_is_imported_when_resolved_and_a_callable_is_itself():
    import math

    assert registry.resolve("math:fsum") is math.fsum and registry.resolve(len) is len


# ------------------------------------------------------------------- a result kind, registered


def journal_values(group) -> dict:
    return {"last_loss": float(group["loss"][-1])}


def read_journal(group):
    return group.name.split("/")[-1], group["loss"][()]


def journal_figures(records: list, prefix: str) -> list:
    from landscape.plot.discover import FigureJob

    return [
        FigureJob(f"{prefix}-journal-{name}", "journal", "loss", lambda: None)
        for name, _ in records
    ]


@pytest.fixture
def journal_kind():
    here = "tests.test_registry"
    kind = registry.register_result_kind(
        registry.ResultKind(
            "journal",
            record=f"{here}:read_journal",
            section="Tracked runs",
            values=f"{here}:journal_values",
            reader=f"{here}:read_journal",
            figures=f"{here}:journal_figures",
        )
    )
    yield kind
    del registry.RESULT_KINDS[kind.name]


def test_a_registered_result_kind_is_listed_shown_plotted_and_reported(
    tmp_path, capsys, journal_kind
):
    from landscape import store
    from landscape.cli import main
    from landscape.plot import discover, report
    from landscape.plot.results import read_result_file

    path = tmp_path / "r.h5"
    with store.transaction(path) as f:
        f.create_group("journal/run1").create_dataset("loss", data=[3.0, 2.0, 0.5])
    with store.open_result_file(path) as f:
        assert store.list_results(f) == [("journal", "run1")]
    assert main(["info", str(path)]) == 0
    assert "last_loss: 0.5" in capsys.readouterr().out
    jobs = discover.figures_for(read_result_file(path), "r")
    assert [(job.name, job.kind) for job in jobs] == [("r-journal-run1", "journal")]
    assert list(report.section_titles())[-2:] == ["journal", "compare"]
    assert report.section_titles()["journal"] == "Tracked runs"
