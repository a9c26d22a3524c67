"""The names a section of docs/file-format.md documents, and the names a written group holds.

A section's names are its backticked tokens, expanded: ``a/{x,y}`` is ``a/x`` and ``a/y``,
``<a|b>`` is ``a`` and ``b``, ``<metric>`` every metric name, ``<parameter>`` any parameter.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import h5py

from landscape.results import Provenance

FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "file-format.md"
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")
PLACEHOLDERS = {"metric": METRICS, "split": ("train", "test")}
PROVENANCE = {f.name for f in Provenance.__dataclass_fields__.values()}


def section(heading_start: str) -> str:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    start = text.index(f"### `{heading_start}")
    body = text[text.index("\n", start) :]
    end = body.find("\n### ")
    return body if end < 0 else body[:end]


def _expand(token: str) -> list[str]:
    parts = re.split(r"(\{[^}]*\}|<[^>]*>)", token)
    options = []
    for part in parts:
        if part.startswith("{"):
            options.append(part[1:-1].split(","))
        elif part.startswith("<") and "|" in part:
            options.append(part[1:-1].split("|"))
        elif part.startswith("<"):
            options.append(PLACEHOLDERS.get(part[1:-1], [part]))
        else:
            options.append([part])
    return ["".join(p) for p in itertools.product(*options)]


def documented(heading_start: str) -> set[str]:
    """Every name the section documents (with ``<parameter>`` left as it is)."""
    tokens = re.findall(r"`([^`]+)`", section(heading_start))
    names = set()
    for token in tokens:
        if re.fullmatch(r"[A-Za-z_][\w/{},<>|-]*", token):
            names.update(_expand(token))
    return names


def written(group: h5py.Group, parameters: set[str]) -> set[str]:
    """Every dataset and subgroup path, group attribute and dataset attribute in ``group``
    (provenance attributes left out: the Provenance section documents them); parameter names
    are written ``<parameter>``."""
    names: set[str] = set(group.attrs) - PROVENANCE

    def visit(path: str, obj) -> None:
        parts = path.split("/")
        if parts[0] == "directions" and len(parts) == 3 and parts[2] in parameters:
            parts[2] = "<parameter>"
        names.add("/".join(parts))
        names.update(set(obj.attrs) - {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME"})

    group.visititems(visit)
    return names
