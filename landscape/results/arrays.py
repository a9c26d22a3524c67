"""What the result dataclasses share: equality over arrays and NaN, and tolerant reads.

Result dataclasses hold numpy arrays and floats that may be NaN (a quantity not computed), so
the ``__eq__`` a dataclass generates (a tuple comparison) is either an error or wrong for
them; :func:`fields_equal` compares field by field, arrays by shape and value, NaN equal to
NaN. The readers take files written by older versions and by hand: a missing dataset or
attribute reads as the missing value of docs/file-format.md (NaN, None), not as an error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import h5py
import numpy as np


def values_equal(a: Any, b: Any) -> bool:
    """Equality for result values: arrays elementwise (NaN == NaN), containers recursively."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and fields_equal(a, b)
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(values_equal(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def fields_equal(a: Any, b: Any) -> bool:
    """``a == b`` for two dataclass instances of one type, field by field."""
    if type(a) is not type(b):
        return NotImplemented
    return all(values_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))


def float_array(group: h5py.Group, name: str, size: int | None = None) -> np.ndarray:
    """Dataset ``name`` as float64 (at least 1-D); absent: NaN of length ``size`` (or empty)."""
    if name in group and isinstance(group[name], h5py.Dataset):
        return np.atleast_1d(np.asarray(group[name][()], dtype=np.float64))
    return np.full(size or 0, np.nan)


def scalar(group: h5py.Group, name: str) -> float:
    """Scalar dataset ``name`` as a float; NaN when absent."""
    if name in group and isinstance(group[name], h5py.Dataset):
        return float(np.asarray(group[name][()], dtype=np.float64).reshape(-1)[0])
    return math.nan


def number(value: Any, default: float = math.nan) -> float:
    """An attribute as a float ('' and absent: ``default``)."""
    if value is None or isinstance(value, (str, bytes)):
        return default
    return float(value)
