"""``--config FILE.toml``: flat TOML keys that become a command's defaults.

Keys are flag names without the leading dashes (``sam-start`` or ``sam_start``).
A table named after the command (``[train]``) may hold them instead. Flags given
on the command line override the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from landscape.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from exc


def read_config_file(path: str | Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Defaults for ``parser`` from a TOML file, checked against its flags and choices."""
    data = load_toml(path)
    command = parser.prog.split()[-1]
    if isinstance(data.get(command), dict):
        data = {**{k: v for k, v in data.items() if not isinstance(v, dict)}, **data[command]}
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            continue  # tables for other commands
        dest = key.replace("-", "_")
        if dest not in actions or dest == "config":
            raise UserError(f"config file {path}: unknown key {key!r} for 'landscape {command}'")
        action = actions[dest]
        if isinstance(value, list) and action.nargs not in ("*", "+"):
            value = ",".join(str(v) for v in value)
        if isinstance(value, str) and action.type is not None and action.nargs is None:
            try:
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise UserError(f"config file {path}: bad value for {key!r}: {exc}") from exc
        if action.choices is not None and value not in action.choices:
            raise UserError(
                f"config file {path}: {key} = {value!r} is not one of "
                f"{', '.join(map(str, action.choices))}"
            )
        values[dest] = value
    return values
