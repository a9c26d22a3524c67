"""A SHA-256 digest per result group, so that damage HDF5's own checksums miss is an error.

HDF5 checks what it was asked to: array chunks carry Fletcher-32 (:func:`landscape.store.
write_dataset`), but scalar datasets, attributes and object headers (a dataset's shape) carry
nothing, and a bit flipped in them reads back as a different number -- a ``trace`` of 26.77 for
18.77, a partial surface whose ``done`` mask grew a dimension, a ``config`` that no longer
matches the run. Each result group (``<kind>/<name>``) therefore carries attribute ``digest``:
``sha256:<hex>`` over a canonical serialisation of everything in it, recursively --

* every attribute (name, type, value) of the group, its subgroups and its datasets, except the
  dimension-scale bookkeeping HDF5 keeps itself (object references, which name addresses);
* every dataset's path, dtype, shape and whether it is Fletcher-32 checksummed;
* the values of the datasets that are not (scalars, strings, empty arrays); the chunked
  numeric arrays are left to their Fletcher-32 checksums, so that ``info`` never reads a
  model-sized direction to check it.

:func:`landscape.store.transaction` verifies every sealed group of a file before changing it
and seals the groups a transaction wrote; :func:`landscape.store.open_result_file` (``info``,
``plot``, ``report``) and the resume of surfaces and interpolations verify before reading. A
mismatch is :class:`DamagedResult`, which names the file and group and leaves the file as it
is. Groups written before digests existed have none and are read as before (``info`` marks
them unverified). A group edited by hand must lose its ``digest`` attribute to be read again.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape.errors import UserError

DIGEST_ATTR = "digest"
ALGORITHM = "sha256"
# Attributes HDF5's dimension-scale API maintains (object references to addresses in the file).
SCALE_ATTRS = frozenset({"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid"})


class DamagedResult(UserError):
    """A result group whose digest does not match what it holds."""


def damaged_message(path: str | Path, detail: str) -> str:
    """The one message of a damaged result file (as :func:`landscape.store.corrupt_message`)."""
    return (
        f"result file {path} is damaged ({detail}); it was left untouched: move it away "
        f"(mv {path} {path}.damaged) and rerun the same command, which then starts a new file"
    )


def digest(group: h5py.Group) -> str:
    """``sha256:<hex>`` of ``group``'s canonical serialisation (see the module docstring)."""
    return _digest(group.id)


def _digest(gid: h5py.h5g.GroupID) -> str:
    # h5py's low-level identifiers: a high-level object per member costs several times more,
    # and a surface of a large model holds a few hundred direction datasets
    hasher = hashlib.new(ALGORITHM)
    _feed_attrs(hasher, gid, skip=DIGEST_ATTR)
    for name in sorted(gid):
        if gid.links.get_info(name).type != h5py.h5l.TYPE_HARD:
            continue  # links name other objects, which are checked where they live
        member = h5py.h5o.open(gid, name)
        _feed(hasher, b"member", name)
        if isinstance(member, h5py.h5g.GroupID):
            _feed(hasher, b"group", _digest(member).encode())
        elif isinstance(member, h5py.h5d.DatasetID):
            _feed_dataset(hasher, member)
    return f"{ALGORITHM}:{hasher.hexdigest()}"


def stored_digest(group: h5py.Group) -> str | None:
    value = group.attrs.get(DIGEST_ATTR)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return None if value is None else str(value)


def seal(group: h5py.Group) -> None:
    """Store the digest of what ``group`` holds now."""
    group.attrs[DIGEST_ATTR] = digest(group)


def verify(group: h5py.Group, path: str | Path | None = None) -> bool:
    """Check ``group`` against its digest: True if it matches, False if it has none (written
    before digests); a mismatch (or a group HDF5 cannot even read) is :class:`DamagedResult`."""
    stored = stored_digest(group)
    _checked_digest(group, path)
    return stored is not None


def _checked_digest(group: h5py.Group, path: str | Path | None) -> str:
    """The digest of ``group`` as it is now, after checking it against the stored one."""
    where = group.name.lstrip("/")
    path = path if path is not None else group.file.filename
    try:
        stored = stored_digest(group)
        actual = digest(group)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DamagedResult(damaged_message(path, f"group {where}: {detail}")) from exc
    if stored is not None and stored != actual:
        raise DamagedResult(
            damaged_message(
                path, f"group {where}: its attributes or scalar values do not match its digest"
            )
        )
    return actual


def result_groups(f: h5py.File) -> list[h5py.Group]:
    """Every result group ``<kind>/<name>`` of a file (the kinds of ``store.RESULT_KINDS``)."""
    from landscape.store import RESULT_KINDS

    groups = []
    for kind in RESULT_KINDS:
        folder = f.get(kind)
        if isinstance(folder, h5py.Group):
            groups += [g for g in folder.values() if isinstance(g, h5py.Group)]
    return groups


def verify_file(f: h5py.File, path: str | Path | None = None) -> dict[str, str]:
    """Verify every sealed result group of ``f``; return the digest of each result group as it
    is now (sealed or not), by path, for :func:`seal_changed`."""
    return {group.name: _checked_digest(group, path) for group in result_groups(f)}


def seal_changed(f: h5py.File, before: dict[str, str]) -> dict[str, str]:
    """Seal the result groups that are new or changed since ``before`` (:func:`verify_file`);
    unchanged groups of older files stay as they were (unverified, not blessed). Returns the
    digest of every result group, as :func:`verify_file` would."""
    now = {}
    for group in result_groups(f):
        now[group.name] = digest(group)
        if before.get(group.name) != now[group.name]:
            group.attrs[DIGEST_ATTR] = now[group.name]  # not part of the digest
    return now


def _feed(hasher: Any, *parts: bytes) -> None:
    """Each part length-prefixed, so that no two serialisations run together."""
    for part in parts:
        hasher.update(struct.pack("<Q", len(part)))
        hasher.update(part)


def _feed_attrs(hasher: Any, oid: Any, skip: str | None = None) -> None:
    if h5py.h5a.get_num_attrs(oid) == 0:
        return
    attrs = (h5py.Group(oid) if isinstance(oid, h5py.h5g.GroupID) else h5py.Dataset(oid)).attrs
    for key in sorted(attrs):
        if key == skip or key in SCALE_ATTRS:
            continue
        _feed(hasher, b"attr", key.encode(), _value_bytes(attrs[key]))


def _feed_dataset(hasher: Any, dsid: h5py.h5d.DatasetID) -> None:
    plist = dsid.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    checksummed = h5py.h5z.FILTER_FLETCHER32 in filters
    _feed(
        hasher,
        b"dataset",
        str(dsid.dtype).encode(),
        repr(tuple(dsid.shape)).encode(),
        b"fletcher32" if checksummed else b"plain",
    )
    _feed_attrs(hasher, dsid)
    if not checksummed:
        _feed(hasher, b"value", _value_bytes(h5py.Dataset(dsid)[()]))


def _value_bytes(value: Any) -> bytes:
    """A canonical byte string for an attribute or dataset value as h5py reads it back."""
    if isinstance(value, str):
        return b"s" + value.encode()
    if isinstance(value, bytes):
        return b"b" + value
    if isinstance(value, (h5py.Reference, h5py.RegionReference)):
        return b"r"  # an address in the file, which a rewrite may move
    array = np.asarray(value)
    if array.dtype.kind == "O":  # variable-length strings (or references: by their text)
        items = [_value_bytes(v) for v in array.reshape(-1)]
        return (
            b"o"
            + repr(array.shape).encode()
            + b"".join(struct.pack("<Q", len(i)) + i for i in items)
        )
    if array.dtype.kind in "SU" or array.dtype.names is None:
        array = np.ascontiguousarray(array)
        return b"a" + array.dtype.str.encode() + repr(array.shape).encode() + array.tobytes()
    return b"c" + repr(array.tolist()).encode()  # compound values
