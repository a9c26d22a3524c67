"""A test asserts something: every test function of the suite holds an ``assert``, a
``pytest.raises``/``pytest.warns`` block, an ``assert_*`` call (``np.testing``,
``torch.testing``), a call of a helper of its module that does, or a call of a ``check_*``
fixture it takes. A test without any of these passes whatever the code does."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _asserts(function: ast.AST, helpers: set[str], fixtures: set[str]) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, (ast.With, ast.AsyncWith)) and any(
            "raises" in ast.unparse(item.context_expr) or "warns" in ast.unparse(item.context_expr)
            for item in node.items
        ):
            return True
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            last = name.rsplit(".", 1)[-1]
            if last.startswith("assert") or name in helpers or name in fixtures:
                return True
    return False


def unasserted_tests(source: str) -> list[str]:
    """The test functions of a module's ``source`` that assert nothing (see the module doc)."""
    tree = ast.parse(source)
    functions = [
        n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    helpers = {
        f.name for f in functions if not f.name.startswith("test_") and _asserts(f, set(), set())
    }
    found = []
    for f in functions:
        if not f.name.startswith("test_"):
            continue
        fixtures = {a.arg for a in f.args.args if a.arg.startswith("check")}
        if not _asserts(f, helpers, fixtures):
            found.append(f.name)
    return found


def test_every_test_function_asserts_something():
    offenders = [
        f"{path.relative_to(TESTS)}::{name}"
        for path in sorted(TESTS.rglob("test_*.py"))
        for name in unasserted_tests(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_a_test_without_an_assertion_is_found_and_the_ways_to_assert_are_not():
    source = """
def _helper(x):
    assert x

def test_runs_only(check_png):
    compute()

def test_plain():
    assert 1

def test_raises():
    with pytest.raises(ValueError):
        compute()

def test_numpy():
    np.testing.assert_allclose(1, 1)

def test_helper():
    _helper(1)

def test_fixture(check_png):
    check_png("f.png")
"""
    assert unasserted_tests(source) == ["test_runs_only"]
