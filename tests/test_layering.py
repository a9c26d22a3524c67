"""The layering rules of docs/architecture.md, read off the code: ``cli/`` parses argv and calls
one function; nothing below it imports ``landscape.cli`` (only the entry point,
``landscape/__main__.py``, sits above it)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "landscape"
ABOVE_CLI = {"__main__.py"}


def imported_modules(source: str, package: str) -> set[str]:
    """Every module that ``source`` (a module of ``package``) imports, at any depth, relative
    imports made absolute; ``from M import N`` counts as M and as M.N (N may be a module)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imports_cli(module: str) -> bool:
    return module == "landscape.cli" or module.startswith("landscape.cli.")


def test_no_module_below_the_cli_imports_it():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] == "cli" or path.name in ABOVE_CLI:
            continue
        package = ".".join(("landscape", *parts[:-1]))
        cli = sorted(filter(imports_cli, imported_modules(path.read_text(), package)))
        if cli:
            offenders[str(path.relative_to(PACKAGE.parent))] = cli
    assert offenders == {}


def test_the_walk_finds_imports_inside_functions_and_relative_ones():
    source = "def f():\n    from ..cli.common import FIXED_BATCH\n    import landscape.cli\n"
    found = imported_modules(source, "landscape.analysis")
    assert {"landscape.cli.common", "landscape.cli"} <= found
    assert not any(map(imports_cli, imported_modules("from . import setup\n", "landscape.x")))
