"""The provenance attributes every result group carries (docs/file-format.md, "Provenance")."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py

from landscape import store


@dataclass
class Provenance:
    """Where a result came from and how it was computed.

    ``config`` holds the kind's own settings (a JSON attribute); ``world_size`` and ``backend``
    say how many processes computed it (1 and "none" for one process); ``evaluation_batch``
    and ``points_per_pass`` how a surface was evaluated (speed only: they do not change the
    values, so they are not in ``config``).
    """

    checkpoint: str
    checkpoint_sha256: str
    arch: str | None = None
    epoch: int | None = None
    phase: str | None = None
    checkpoint_format: str | None = None
    split: str | None = None
    samples: int | None = None
    bn_mode: str | None = None
    dtype: str | None = None
    seed: int | None = None
    seconds: float | None = None
    world_size: int = 1
    backend: str = "none"
    evaluation_batch: int | None = None  # surfaces: examples per forward pass (measured or given)
    points_per_pass: int | None = None  # surfaces: grid points per batched call
    config: dict[str, Any] = field(default_factory=dict)

    def write(self, group: h5py.Group) -> None:
        store.set_attrs(group, **dataclasses.asdict(self))

    def settings(self) -> dict[str, Any]:
        """``config`` with the provenance that are also command-line options under their flags'
        keys (``bn_mode`` is ``--bn``), for :func:`as_flags`."""
        given = {"split": self.split, "samples": self.samples, "bn": self.bn_mode}
        given.update(dtype=self.dtype, seed=self.seed)
        return {**{k: v for k, v in given.items() if v is not None}, **self.config}

    @classmethod
    def read(cls, group: h5py.Group) -> Provenance:
        attrs = store.read_attrs(group)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in attrs:
                continue
            value = attrs[f.name]
            if value == "" and f.name != "checkpoint":  # None is stored as ''
                value = None
            values[f.name] = value
        values.setdefault("checkpoint", "")
        values.setdefault("checkpoint_sha256", "")
        if not isinstance(values.get("config"), dict):
            values["config"] = {}
        return cls(**values)


def as_flags(settings: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The entries ``keys`` of ``settings`` (a stored ``config``, say) that are present and not
    None, each under the name of its command-line flag (``trace_rel_stderr`` ->
    ``trace-rel-stderr``), in the order of ``keys``: what ``landscape info`` shows as
    ``--trace-rel-stderr 0.01`` (True as ``--flag``, False as ``--no-flag``). NaN and ``""``,
    the format's missing values, count as absent."""
    present = {k: settings[k] for k in keys if settings.get(k) is not None}
    return {k.replace("_", "-"): v for k, v in present.items() if v == v and v != ""}
