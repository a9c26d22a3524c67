"""``experiment/<name>/``: the tables of an experiment (``landscape experiment late-sam``):
``runs``, ``summary`` and ``verdicts`` (one row per claim of the paper).

The layout is docs/file-format.md, "experiment"; this module is the only code that writes or
reads it. A table is one 1-D dataset per column, one row per run (``runs``) or per arm
(``summary``); strings are fixed-length bytes. The per-run analyses themselves are ordinary
``hessian/``, ``sharpness/``, ``interpolation/`` and ``escape/`` groups.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.results.arrays import fields_equal, number


def _column(values: list) -> np.ndarray:
    if values and isinstance(values[0], str):  # UTF-8 bytes: a verdict's numbers say "λ1", "R²"
        return np.array([v.encode() for v in values], dtype=object).astype("S")
    return np.asarray(values)


def write_table(group: h5py.Group, rows: list[dict[str, Any]]) -> None:
    """Rows (dicts) as columns; a column some rows lack is '' (strings) or NaN there."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for column in columns:
        present = [row[column] for row in rows if column in row]
        missing = "" if isinstance(present[0], str) else math.nan
        store.write_dataset(group, column, _column([row.get(column, missing) for row in rows]))


def read_table(group: h5py.Group) -> list[dict[str, Any]]:
    """The rows of a table written by :func:`write_table` (strings decoded, numbers as Python
    numbers); columns that are not 1-D are left out."""
    columns = {
        k: item[()]
        for k, item in group.items()
        if isinstance(item, h5py.Dataset) and item.ndim == 1
    }
    size = min((len(v) for v in columns.values()), default=0)
    return [
        {k: (v[i].decode() if isinstance(v[i], bytes) else v[i].item()) for k, v in columns.items()}
        for i in range(size)
    ]


@dataclass(eq=False)
class ExperimentResult:
    """An experiment's settings, its printed summary and its two tables."""

    kind: str
    config: dict[str, Any]
    dataset: str
    arch: str
    epochs: int
    rho: float
    seeds: list[int]
    summary_text: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    # one row per claim: claim, rule, verdict, numbers (landscape.experiment.verdicts)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    confidence: float = 0.95
    interval: str = "student-t over seeds"

    __eq__ = fields_equal

    def write(self, group: h5py.Group) -> None:
        store.set_attrs(
            group,
            kind=self.kind,
            config=self.config,
            dataset=self.dataset,
            arch=self.arch,
            epochs=int(self.epochs),
            rho=float(self.rho),
            seeds=list(self.seeds),
            summary_text=self.summary_text,
            confidence=float(self.confidence),
            interval=self.interval,
        )
        for name, rows in (
            ("runs", self.runs),
            ("summary", self.summary),
            ("verdicts", self.verdicts),
        ):
            table = store.replace_group(group, name)
            if rows:
                write_table(table, rows)

    @classmethod
    def read(cls, group: h5py.Group) -> ExperimentResult:
        attrs = store.read_attrs(group)
        seeds = attrs.get("seeds", "[]")
        return cls(
            kind=str(attrs.get("kind", "")),
            config=attrs["config"] if isinstance(attrs.get("config"), dict) else {},
            dataset=str(attrs.get("dataset", "")),
            arch=str(attrs.get("arch", "")),
            epochs=int(number(attrs.get("epochs"), 0)),
            rho=number(attrs.get("rho")),
            seeds=[int(s) for s in (json.loads(seeds) if isinstance(seeds, str) else seeds)],
            summary_text=str(attrs.get("summary_text", "")),
            runs=_rows(group, "runs"),
            summary=_rows(group, "summary"),
            verdicts=_rows(group, "verdicts"),
            confidence=number(attrs.get("confidence"), 0.95),
            interval=str(attrs.get("interval", "student-t over seeds")),
        )


def _rows(group: h5py.Group, name: str) -> list[dict[str, Any]]:
    table = group.get(name)
    return read_table(table) if isinstance(table, h5py.Group) else []
