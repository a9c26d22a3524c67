"""Periodic saving and resume of point-by-point analyses (surfaces, interpolations).

One home for the three rules every such analysis follows:

* **Resume** -- :func:`read_previous`: an earlier group of the same checkpoint and options is
  read back and only its missing points are computed; a group of other options is replaced
  (said on stderr); a damaged file is an error naming it, never silently restarted.
* **Sharing the points** -- :func:`owned_mask`: the points left to do are dealt by
  :meth:`Partition.owned`, whatever the world size of the run that left them.
  Points this process does not own are presented to the engine as done, so the engine's own
  skip-what-is-done loop evaluates exactly this process's share.
* **Saving** -- :class:`PeriodicSaver`: finished values are gathered to the writer
  (:func:`gather_values`) and only the writer writes, through the locked, atomic
  :func:`landscape.store.transaction`.

What a save costs: the transaction reads the whole file into memory and writes it to a new one
(``os.replace``; a kill leaves the old or the new file), so one save costs about one copy of the
file; the writer only rewrites the values that change (``write_values`` of the result kinds),
and the interval grows to 20x the measured cost of a save, so saving never takes more than
about 5% of a run (benchmarks/bench_saving.py measures it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from landscape import interrupt, store
from landscape.atomic import WriteError
from landscape.errors import UserError
from landscape.parallel import SINGLE, Partition
from landscape.results import integrity

log = logging.getLogger("landscape.surface")

R = TypeVar("R")


def read_previous(
    out: Path,
    group_path: str,
    sha256: str,
    config: dict,
    read: Callable[[h5py.Group], R],
    shape: tuple[int, ...] | None = None,
) -> R | None:
    """``read(group)`` of an earlier run of the same analysis, or None (absent, or computed from
    another checkpoint or with other options: the group is then replaced, said on stderr).

    ``shape`` is the grid the options define (None: fitted from the file's own axes); a group
    whose ``done`` mask or metrics have another shape, a ``config`` attribute that is not JSON
    and a digest that does not match (:mod:`landscape.results.integrity`) make the file
    damaged: an error that discards nothing, never a resume of the wrong points or a restart.
    """
    try:
        return _read_previous(out, group_path, sha256, config, read, shape)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise UserError(store.corrupt_message(out, exc)) from exc


def _read_previous(out, group_path, sha256, config, read, shape):
    if not out.exists():
        return None
    with h5py.File(out, "r") as f:
        if group_path not in f:
            return None
        integrity.verify_file(f, out)
        g = f[group_path]
        attrs = store.read_attrs(g)
        if isinstance(attrs.get("config"), str):  # read_attrs keeps what is not JSON as text
            raise integrity.DamagedResult(
                integrity.damaged_message(
                    out, f"group {group_path}: its config attribute is not JSON"
                )
            )
        recorded = json.loads(json.dumps(config))
        if attrs.get("checkpoint_sha256") != sha256 or attrs.get("config") != recorded:
            changed = _changed_keys(attrs.get("config"), recorded)
            log.warning(
                "replacing %s in %s: it was computed %s",
                group_path,
                out,
                f"with different options ({', '.join(changed)})"
                if changed
                else "from another checkpoint",
            )
            return None
        if "done" not in g:
            return None
        result = read(g)
    _check_shapes(out, group_path, result, shape)
    return result


def _check_shapes(out: Path, group_path: str, result: Any, shape: tuple[int, ...] | None) -> None:
    """Every metric and the ``done`` mask have the grid's shape (a flipped bit in a dataset's
    dimension would otherwise resume as "all points done" and leave points NaN)."""
    if shape is None:
        shape = tuple(result.shape) if hasattr(result, "shape") else result.alpha.shape
    stored = {"done": result.done.shape, **{k: v.shape for k, v in result.metrics.items()}}
    for name, found in stored.items():
        if tuple(found) != tuple(shape):
            raise integrity.DamagedResult(
                integrity.damaged_message(
                    out,
                    f"group {group_path}: {name} has shape {tuple(found)}, "
                    f"the grid of these options {tuple(shape)}",
                )
            )


def _changed_keys(old, new) -> list[str]:
    if not isinstance(old, dict):
        return []
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def owned_mask(done: np.ndarray, partition: Partition = SINGLE) -> np.ndarray:
    """``done`` as this process's engine should see it: True where a point is done or belongs
    to another process (the points left are dealt by ``partition.owned``)."""
    seen = np.ones(done.shape, dtype=bool)
    left = np.flatnonzero(~done.reshape(-1))
    seen.reshape(-1)[partition.owned(left)] = False
    return seen


class OwnedPoints:
    """This process's share of the points left in a result's ``done`` mask.

    The engine fills ``view`` (:func:`owned_mask`) and the shared ``metrics`` arrays in place;
    :meth:`sync` brings the points every process has computed since into ``done`` and
    ``metrics`` on every process (``partition.gather``), ready for the writer to save.
    """

    def __init__(
        self, metrics: dict[str, np.ndarray], done: np.ndarray, partition: Partition = SINGLE
    ) -> None:
        self.metrics, self.done, self.partition = metrics, done, partition
        self.view = owned_mask(done, partition)
        self._before = self.view.copy()

    def sync(self) -> None:
        mine = np.flatnonzero((self.view & ~self._before).reshape(-1))
        values = {k: v.reshape(-1)[mine] for k, v in self.metrics.items()}
        for indices, share in self.partition.gather((mine, values)):
            self.done.reshape(-1)[indices] = True
            for name, array in self.metrics.items():
                array.reshape(-1)[indices] = share[name]


class PeriodicSaver:
    """Runs ``write(f)`` inside a store transaction at most every few seconds; the interval grows
    to 20x the cost of one save, so that copying a large file never dominates the run.

    ``group`` is claimed for this process (:func:`landscape.store.claim_group`) and every save
    checks the claim, so that a second command writing the same group stops with a clear error
    instead of mixing its points into another grid. ``finished()`` counts the finished points:
    a stop signal's message says how many are on disk, a failed save how many were not saved.

    ``before_save()`` runs before each save; only the writer of ``partition`` writes. With
    several processes the engines deal the points and gather their values to every process at
    each step (:func:`landscape.surface.grid.evaluate_point_groups`), and call the saver on the
    writer alone, so a save is never collective: a rank that dies loses at most one step.
    """

    def __init__(
        self,
        out: Path,
        every: float,
        group: str,
        finished: Callable[[], int],
        total: int,
        *,
        partition: Partition = SINGLE,
        before_save: Callable[[], None] = lambda: None,
    ) -> None:
        self.out, self.every, self.group = out, every, group
        self.finished, self.total = finished, total
        self.partition, self.before_save = partition, before_save
        self.last, self.cost, self.pending, self.failed = time.monotonic(), 0.0, False, False
        self.saved = self.initial = finished()
        self.note_saved()

    def claim(self) -> None:
        """Make the group this process's (a resumed run takes over what an earlier one left)."""
        if self.partition.is_writer:
            with store.transaction(self.out) as f:
                store.claim_group(f, self.group)
        self.note_saved()

    def save(self, write: Callable[[h5py.File], None]) -> None:
        self.pending = True
        due = time.monotonic() - self.last >= max(self.every, 20 * self.cost)
        if due:
            self.flush(write)

    def flush(self, write: Callable[[h5py.File], None]) -> None:
        if self.failed:
            return  # the error is on its way up; do not try again from every finally block
        started = time.monotonic()
        with interrupt.held():  # a stop signal during the save acts after the bookkeeping below
            try:
                self.before_save()
                count = self.finished()
                if self.partition.is_writer:
                    with store.transaction(self.out) as f:
                        store.owned_group(f, self.group)
                        write(f)
                        note_session(f[self.group], self.partition, count - self.initial)
            except WriteError as exc:
                self.failed = True
                exc.lost = (
                    f"{self.finished() - self.saved} points finished since the last save "
                    f"({time.monotonic() - self.last:.0f} s ago) could not be saved"
                )
                raise
            except BaseException:
                self.failed = True
                raise
            self.last = time.monotonic()
            self.cost = self.last - started
            self.pending, self.saved = False, count
            self.note_saved()

    def finish(self, write: Callable[[h5py.File], None]) -> None:
        """The last save: what is not saved yet."""
        if self.pending:
            self.flush(write)

    def note_saved(self) -> None:
        interrupt.note_saved(
            f"{self.out}:{self.group} with {self.saved} of {self.total} points done"
        )


def note_session(group: h5py.Group, partition: Partition, points: int) -> None:
    """Attribute ``sessions`` of a point-by-point result: one entry per run that computed some
    of its points -- ``world_size``, ``backend`` and ``points`` -- so that a surface begun on two
    processes and finished on one says so (the group's ``world_size`` is its first run's).
    This run's entry (by :data:`landscape.store.WRITER`) is updated at each save."""
    raw = group.attrs.get("sessions", "[]")
    try:
        sessions = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except json.JSONDecodeError:
        sessions = []  # unreachable behind the group's digest; a hand-edited file: start over
    if not isinstance(sessions, list):
        sessions = []
    entry = {**partition.provenance(), "points": int(points), "writer": store.WRITER}
    if sessions and isinstance(sessions[-1], dict) and sessions[-1].get("writer") == store.WRITER:
        sessions[-1] = entry
    else:
        sessions.append(entry)
    group.attrs["sessions"] = json.dumps(sessions)


def write_new_group(out: Path, group_path: str, result: Any, partition: Partition = SINGLE) -> None:
    """Create ``group_path`` from ``result`` (a result kind) and claim it (writer only)."""
    if partition.is_writer:
        with store.transaction(out) as f:
            result.write(store.replace_group(f, group_path))
            store.claim_group(f, group_path)
    partition.barrier()
