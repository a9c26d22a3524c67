"""The HDF5 result layout of DESIGN.md, in one place.

Every write goes through :func:`transaction`: the existing file (if any) is
copied to a temporary file in the same folder, changed there, flushed, fsynced
and moved into place with ``os.replace``. A kill at any moment leaves either
the old file or the new one, never a half-written one. Each command replaces
only its own groups.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape import __version__
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
    folder = path.parent if str(path.parent) else Path(".")
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
            raise UserError(f"output {path} exists but is not an HDF5 file; it was left untouched, choose another --out")
    return path


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
        raise UserError(f"{path} is not an HDF5 result file (was it a checkpoint? use 'landscape info')")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path} is not a readable HDF5 file: {exc}") from exc


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def transaction(path: str | Path, command: list[str] | None = None) -> Iterator[h5py.File]:
    """Open ``path`` for changes that land all at once (or not at all)."""
    path = check_output_path(path)
    folder = path.parent if str(path.parent) else Path(".")
    _remove_stale_partials(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if path.exists():
            shutil.copyfile(path, tmp)
            mode = "r+"
        else:
            mode = "w"
        try:
            handle = h5py.File(tmp, mode)
        except OSError as exc:
            raise UserError(f"output {path} exists but is not a readable HDF5 file: {exc}") from exc
        with handle as f:
            _stamp_root(f, command)
            yield f
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_dir(folder)
    finally:
        if tmp.exists():
            tmp.unlink()


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stamp_root(f: h5py.File, command: list[str] | None) -> None:
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["landscape_version"] = __version__
    if "created" not in f.attrs:
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    f.attrs["command"] = json.dumps(command if command is not None else ["landscape", *sys.argv[1:]])


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
    """The provenance attributes every result group carries (DESIGN.md)."""
    missing = [k for k in PROVENANCE_KEYS if k not in provenance]
    if missing:
        raise ValueError(f"provenance lacks {missing}")
    set_attrs(group, **provenance)


def read_attrs(obj: h5py.Group | h5py.Dataset) -> dict[str, Any]:
    """Attributes as Python values; JSON strings for ``config`` decoded."""
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
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
    if name in group:
        del group[name]
    dataset = group.create_dataset(name, data=np.asarray(data))
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


def write_sharpness_group(f, stem: str, computed, provenance_attrs: dict) -> None:
    """``sharpness/<stem>/<measure>``: one scalar dataset per measure, its parameters as attrs.

    Measures already in the group survive when they were computed on the same checkpoint and
    examples; otherwise the group is replaced.
    """
    name = f"sharpness/{safe_group_name(stem)}"
    same = (
        name in f
        and all(
            str(f[name].attrs.get(key, "")) == str(provenance_attrs[key])
            for key in ("checkpoint_sha256", "split", "samples", "seed", "bn_mode", "dtype")
        )
    )
    group = f[name] if same else replace_group(f, name)
    set_provenance(group, provenance_attrs)
    for result, seconds in computed:
        write_dataset(
            group, result.measure, float(result.value),
            stderr=float(result.stderr), loss=float(result.loss), seconds=float(seconds),
            gradient_evaluations=float(result.gradient_evaluations),
            **{k: v for k, v in result.params.items() if k not in ("bn_mode", "seed", "examples")},
            **{k: v for k, v in result.extra.items() if not isinstance(v, list)},
        )


def write_escape_group(f, name: str, result, provenance_attrs: dict) -> None:
    """``escape/<name>/``: step, distance, train_loss, train_acc, eigenvalue; fit as attrs."""
    group = replace_group(f, f"escape/{name}")
    set_provenance(group, provenance_attrs)
    for key in ("step", "distance", "train_loss", "train_acc", "eigenvalue"):
        write_dataset(group, key, getattr(result, key))
    set_attrs(
        group, growth_rate=result.growth_rate, growth_factor=result.growth_factor,
        fit_start=result.fit_window[0], fit_stop=result.fit_window[1],
        diverged_at=float(result.diverged_at),
        **{k: v for k, v in result.params.items() if k not in ("bn_mode", "examples")},
    )
