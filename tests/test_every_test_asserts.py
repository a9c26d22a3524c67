"""Every test function asserts something: a test without an assertion passes whatever the code does.

A test counts as asserting when its body (or a helper or fixture it calls, followed through the
test suite's own functions) holds an ``assert``, ``pytest.raises``/``warns``/``fail``, or a
``numpy.testing``/``torch.testing`` assertion.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CHECKING_CALLS = {"raises", "warns", "fail", "deprecated_call", "approx"}


def _functions() -> dict[str, list[ast.FunctionDef]]:
    found: dict[str, list[ast.FunctionDef]] = {}
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.setdefault(node.name, []).append(node)
    return found


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(sub, ast.Name):  # a helper handed on (fixtures return functions)
            names.add(sub.id)
    return names


def _asserts_directly(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
        if isinstance(sub, ast.Call):
            name = sub.func.attr if isinstance(sub.func, ast.Attribute) else ""
            name = name or getattr(sub.func, "id", "")
            if name in CHECKING_CALLS or name.startswith("assert_"):
                return True
    return False


def _asserting(functions: dict[str, list[ast.FunctionDef]]) -> set[str]:
    """Names of the suite's functions that assert, directly or through the suite's helpers."""
    asserting = {
        name for name, defs in functions.items() if any(_asserts_directly(d) for d in defs)
    }
    changed = True
    while changed:
        changed = False
        for name, defs in functions.items():
            if name not in asserting and any(_called_names(d) & asserting for d in defs):
                asserting.add(name)
                changed = True
    return asserting


def test_every_test_function_asserts_something():
    functions = _functions()
    asserting = _asserting(functions)
    silent = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                if node.name in asserting:
                    continue
                silent.append(f"{path.relative_to(TESTS)}::{node.name}")
    assert silent == []
