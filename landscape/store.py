"""The HDF5 result layout of docs/file-format.md, in one place.

Every write goes through :func:`transaction`: under a lock shared by all writers
of the file, the current file (if any) is read into memory, changed there and
written to a temporary file in the same folder, fsynced and moved into place
with ``os.replace`` (:mod:`landscape.atomic`). A kill at any moment leaves either
the old file or the new one, never a half-written one. Each command replaces
only its own groups.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape import __version__, interrupt
from landscape.atomic import write_atomic, write_error, write_target
from landscape.errors import UserError

SCHEMA_VERSION = 1
RESULT_KINDS = ("hessian", "surface", "interpolation", "sharpness", "escape", "experiment")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str | Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def check_output_path(path: str | Path) -> Path:
    """Refuse, before any work is done, an output that cannot be written or is not HDF5."""
    path = Path(path)
    target = write_target(path)  # a symbolic link is written through
    folder = target.parent if str(target.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"output {path} is a directory; give a file name ending in .h5")
    if not folder.is_dir():
        raise UserError(f"output folder {folder} does not exist; create it or choose another --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"output folder {folder} is not writable; choose another --out")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise UserError(f"output {path} exists but cannot be read; choose another --out")
        if not is_hdf5(path):
            raise UserError(
                f"output {path} exists but is not an HDF5 file; it was left untouched, "
                "choose another --out"
            )
        _check_existing_results(path)
    return path


def _check_existing_results(path: Path) -> None:
    """An existing output that the final save would refuse is refused before the work: a damaged
    group (:mod:`landscape.results.integrity`), or a result kind that is not a group."""
    try:
        handle = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise UserError(corrupt_message(path, exc)) from exc
    with handle as f:
        for kind in RESULT_KINDS:
            if kind in f and not isinstance(f[kind], h5py.Group):
                raise UserError(
                    f"output {path} holds '{kind}' as a dataset, where landscape keeps a group "
                    "of results; it was left untouched, choose another --out"
                )
        _integrity().verify_file(f, path)


def resolve_output(out: str | Path | None, default: str | Path) -> Path:
    """The one output rule of every command: ``--out`` if given, else ``default`` (whose folder
    is created); checked by :func:`check_output_path` before any work is done."""
    if out is None:
        Path(default).parent.mkdir(parents=True, exist_ok=True)
        out = default
    return check_output_path(out)


def open_result_file(path: str | Path) -> h5py.File:
    """Open a result file for reading, with one clear error for anything that is not one."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a result file")
    if not path.exists():
        raise UserError(f"result file {path} does not exist")
    if not os.access(path, os.R_OK):
        raise UserError(f"result file {path} cannot be read (permission denied)")
    if not is_hdf5(path):
        raise UserError(
            f"{path} is not an HDF5 result file (was it a checkpoint? use 'landscape info')"
        )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path} is not a readable HDF5 file: {exc}") from exc
    try:
        _integrity().verify_file(f, path)
    except BaseException:
        f.close()
        raise
    return f


def _integrity():
    """:mod:`landscape.results.integrity` (imported late: results imports this module)."""
    from landscape.results import integrity

    return integrity


@contextmanager
def transaction(path: str | Path, command: list[str] | None = None) -> Iterator[h5py.File]:
    """Open ``path`` for changes that land all at once (or not at all).

    Concurrent writers of one file (a job array putting every result into one file) are
    serialised by an advisory lock on ``.<name>.lock`` next to it, held from reading the
    current file to its replacement: each transaction changes the file as the previous one
    left it, so no writer puts back a copy taken before another's save. The file is changed
    in memory (HDF5's core driver, nothing written through HDF5) and then written by
    :func:`landscape.atomic.write_atomic`, so a full disk or a read-only folder is one
    :class:`~landscape.atomic.WriteError` and the old file stays as it was.
    """
    path = write_target(path)  # through a symbolic link: the target is locked and replaced
    _check_target(path)
    with interrupt.held(), _file_lock(path):
        _remove_stale_partials(path)
        handle = _open_in_memory(path)
        with handle as f:
            written = _WRITTEN.get(path.resolve())
            if written is not None and written[0] == _image_crc(f):
                before = written[1]  # byte for byte the file this process wrote last
            else:
                before = _integrity().verify_file(f, path)  # damage is refused
            _stamp_root(f, command)
            yield f
            after = _integrity().seal_changed(f, before)
            f.flush()
            image = f.id.get_file_image()
        _WRITTEN.pop(path.resolve(), None)
        write_atomic(path, image)
        _WRITTEN[path.resolve()] = ((len(image), zlib.crc32(image)), after)


# The digests of the result groups of each file this process wrote, with the size and CRC-32 of
# what it wrote: a periodic save that finds the file exactly as its last save left it skips the
# second verification (a CRC-32 detects every error burst up to 32 bits, and another writer's
# changes), so a save digests the groups once instead of twice.
_WRITTEN: dict[Path, tuple[tuple[int, int], dict[str, str]]] = {}


def _image_crc(f: h5py.File) -> tuple[int, int]:
    image = f.id.get_file_image()
    return len(image), zlib.crc32(image)


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"output {path} is a directory; give a file name ending in .h5")
    if path.exists() and not is_hdf5(path):
        raise UserError(
            f"output {path} exists but is not an HDF5 file; it was left untouched, "
            "choose another --out"
        )


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``.<name>.lock`` (kept: removing a lock file races with its
    users)."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError as exc:
        try:  # another user's lock file in a shared folder: flock needs no write access
            fd = os.open(lock_path, os.O_RDONLY)
        except OSError:
            raise write_error(exc, path, 0) from None
    except OSError as exc:
        raise write_error(exc, path, 0) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_in_memory(path: Path) -> h5py.File:
    """The current file (or a new one) as an HDF5 image in memory."""
    if not path.exists():
        return h5py.File(path, "w", driver="core", backing_store=False, locking=False)
    if not os.access(path, os.R_OK):
        raise UserError(f"output {path} exists but cannot be read; choose another --out")
    try:
        return h5py.File(path, "r+", driver="core", backing_store=False, locking=False)
    except OSError as exc:
        raise UserError(corrupt_message(path, exc)) from exc


def corrupt_message(path: Path, exc: BaseException) -> str:
    """For a result file that exists but cannot be read: name it and say what to do."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _integrity().damaged_message(path, detail)


def _remove_stale_partials(path: Path) -> None:
    """Delete temp files that a killed writer of ``path`` left behind (its process is gone)."""
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        pid_text = stale.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and _process_alive(int(pid_text)):
            continue
        try:
            stale.unlink()
        except OSError:
            pass


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# One id per process: which command is writing a group that it saves again and again.
WRITER = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


def claim_group(f: h5py.File, name: str) -> None:
    """Mark ``name`` as being written by this process (see :func:`owned_group`)."""
    f[name].attrs["writer"] = WRITER


def owned_group(f: h5py.File, name: str) -> h5py.Group:
    """``f[name]`` if this process still owns it; otherwise a clear error.

    Two commands that write the same group of one file at once (same ``--name`` and
    ``--out``) would mix their points; the one whose group was taken over stops here, and the
    group stays as the other one writes it.
    """
    group = f.get(name)
    owner = None if group is None else group.attrs.get("writer")
    if isinstance(owner, bytes):
        owner = owner.decode()
    if owner != WRITER:
        who = (
            "deleted"
            if group is None
            else f"taken over by another landscape command ({_describe_writer(owner)})"
        )
        raise UserError(
            f"{name} in {f.filename} was {who} while this command was writing it; "
            "two commands cannot write the same group of one file at once: this one stops and "
            "the group holds what the other writes; give each command its own --name or --out"
        )
    return group


def _describe_writer(owner: Any) -> str:
    host, _, rest = str(owner or "").partition(":")
    pid = rest.partition(":")[0]
    return f"process {pid} on {host}" if pid else "unknown process"


def _stamp_root(f: h5py.File, command: list[str] | None) -> None:
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["landscape_version"] = __version__
    if "created" not in f.attrs:
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
    f.attrs["command"] = json.dumps(
        command if command is not None else ["landscape", *sys.argv[1:]]
    )


def replace_group(f: h5py.File, name: str) -> h5py.Group:
    """Delete ``name`` if present and create it afresh (parents created as needed)."""
    if name in f:
        del f[name]
    return f.create_group(name)


def _attr_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    if isinstance(value, Path):
        return str(value)
    return value


def set_attrs(obj: h5py.Group | h5py.Dataset, **attrs: Any) -> None:
    """Write attributes; dicts and lists become JSON strings, None becomes ''."""
    for key, value in attrs.items():
        obj.attrs[key] = _attr_value(value)


PROVENANCE_KEYS = (
    "checkpoint",
    "checkpoint_sha256",
    "arch",
    "epoch",
    "phase",
    "split",
    "samples",
    "bn_mode",
    "dtype",
    "seed",
    "seconds",
    "config",
)


def set_provenance(group: h5py.Group, provenance: dict[str, Any]) -> None:
    """The provenance attributes every result group carries (docs/file-format.md)."""
    missing = [k for k in PROVENANCE_KEYS if k not in provenance]
    if missing:
        raise ValueError(f"provenance lacks {missing}")
    set_attrs(group, **provenance)


def read_attrs(obj: h5py.Group | h5py.Dataset) -> dict[str, Any]:
    """Attributes as Python values; JSON strings for ``config`` decoded."""
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
        if key == "digest":  # the group's checksum (landscape.results.integrity), not a value
            continue
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        if key == "config" and isinstance(value, str) and value:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


def write_dataset(group: h5py.Group, name: str, data: Any, **attrs: Any) -> h5py.Dataset:
    """A dataset with attributes; numeric arrays carry a Fletcher-32 checksum per chunk, so that
    a bit flipped on disk is a read error (naming the file) instead of a silently wrong value;
    scalars and attributes are covered by their group's digest (:mod:`landscape.results.
    integrity`), written by :func:`transaction`."""
    if name in group:
        del group[name]
    array = np.asarray(data)
    checksummed = array.ndim >= 1 and array.size > 0 and array.dtype.kind in "biuf"
    dataset = group.create_dataset(name, data=array, fletcher32=checksummed)
    set_attrs(dataset, **attrs)
    return dataset


def list_results(f: h5py.File) -> list[tuple[str, str]]:
    """``(kind, name)`` for every result group in a file, in file order."""
    found = []
    for kind in RESULT_KINDS:
        if kind in f and isinstance(f[kind], h5py.Group):
            for name in f[kind]:
                found.append((kind, name))
    return found


def safe_group_name(text: str) -> str:
    """A checkpoint stem or label usable as one HDF5 path component."""
    cleaned = text.replace("/", "_").strip() or "result"
    return "_" + cleaned if cleaned.startswith(".") else cleaned


def checkpoint_label(path: str | Path) -> str:
    """The result name of a checkpoint: its run (the folder holding it) and its file stem.

    Every landscape run ends in a file of the same name (``epoch-060-sam.pt``), so the stem
    alone would let seed 1's results overwrite seed 0's; ``<run>_<stem>`` tells them apart.
    The folder name is taken from the absolute path (``./model.pt`` is named after the current
    folder) without resolving links, so the name is the one the user sees.
    """
    path = Path(path)
    run = Path(os.path.abspath(path)).parent.name
    return safe_group_name(f"{run}_{path.stem}" if run else path.stem)


def group_checkpoints(group: h5py.Group) -> list[str]:
    """The SHA-256 of the checkpoint(s) a result group was computed from (several for an
    interpolation path)."""
    shas = group.attrs.get("checkpoint_sha256s")
    if shas is not None:
        if isinstance(shas, bytes):
            shas = shas.decode()
        return (
            [str(s) for s in json.loads(shas)] if isinstance(shas, str) else [str(s) for s in shas]
        )
    sha = group.attrs.get("checkpoint_sha256")
    if isinstance(sha, bytes):
        sha = sha.decode()
    return [str(sha)] if sha else []


def claim_group_name(
    f: h5py.File | None, kind: str, base: str, sha256s: list[str], *, where: str = ""
) -> tuple[str, bool]:
    """The name under ``kind/`` for a result of the checkpoint(s) ``sha256s``: ``base``, unless
    that group holds a result of other checkpoints; then ``base-2``, ``base-3``, ... .

    Returns ``(name, exists)``; ``exists`` means the group holds the same checkpoint(s), analysed
    before (perhaps with other options), and is replaced or resumed by the caller. A result is
    never replaced by another checkpoint's: the detour is said on stderr.
    """
    import logging

    log = logging.getLogger("landscape.store")
    base = safe_group_name(base)
    wanted = [str(s) for s in sha256s]
    n = 1
    while True:
        name = base if n == 1 else f"{base}-{n}"
        path = f"{kind}/{name}"
        if f is None or path not in f:
            break
        if group_checkpoints(f[path]) == wanted:
            if n > 1:
                log.info(
                    "%s/%s holds another checkpoint's result; using %s%s", kind, base, path, where
                )
            return name, True
        n += 1
    if n > 1:
        held = str(f[f"{kind}/{base}"].attrs.get("checkpoint", "another checkpoint"))
        log.warning(
            "%s/%s%s holds the result of another checkpoint (%s); writing %s instead",
            kind,
            base,
            where,
            held,
            path,
        )
    return name, False


def claim_group_name_in(
    path: str | Path, kind: str, base: str, sha256s: list[str]
) -> tuple[str, bool]:
    """:func:`claim_group_name` in the result file at ``path`` (which need not exist yet)."""
    path = Path(path)
    if not path.exists():
        return safe_group_name(base), False
    _check_target(path)
    try:
        handle = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise UserError(corrupt_message(path, exc)) from exc
    with handle as f:
        return claim_group_name(f, kind, base, sha256s, where=f" in {path}")
