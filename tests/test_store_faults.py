"""The HDF5 store under faults: concurrent writers, a full disk, damaged files."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape import atomic, store
from landscape.atomic import WriteError
from landscape.errors import UserError

REPO = Path(__file__).resolve().parents[1]

# One writer of a job array: `saves` periodic saves of its own group, each a transaction that
# changes the file as the previous writer left it (as `landscape surface --save-every` does).
WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from landscape import store
    path, name, saves, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    import os
    while not os.path.exists(go):
        time.sleep(0.001)
    done = np.zeros(saves, dtype=bool)
    for k in range(saves):
        done[k] = True
        with store.transaction(path) as f:
            if k == 0:
                store.write_dataset(store.replace_group(f, name), "done", done)
                store.claim_group(f, name)
            store.owned_group(f, name)["done"][...] = done
    """
)


def test_concurrent_writers_of_different_groups_lose_nothing(tmp_path):
    path, go, writers, saves = tmp_path / "race.h5", tmp_path / "go", 8, 10
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"surface/w{i}", str(saves), str(go)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    go.touch()  # all start together
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * writers, errors
    with h5py.File(path, "r") as f:
        assert sorted(f["surface"]) == sorted(f"w{i}" for i in range(writers))
        for i in range(writers):
            assert f[f"surface/w{i}/done"][()].all(), f"w{i} lost saves"
    assert [p.name for p in tmp_path.glob("*.partial")] == []
    assert [p.name for p in tmp_path.glob(".*.lock")] == []  # removed by the last writer


def test_a_second_writer_of_the_same_group_stops_the_first_with_a_clear_error(
    tmp_path, monkeypatch
):
    path = tmp_path / "r.h5"
    with store.transaction(path) as f:
        store.write_dataset(store.replace_group(f, "surface/A"), "done", [True, False])
        store.claim_group(f, "surface/A")
    first = store.WRITER
    monkeypatch.setattr(store, "WRITER", "other-host:4242:1")  # another process takes it over
    with store.transaction(path) as f:
        store.claim_group(f, "surface/A")
    monkeypatch.setattr(store, "WRITER", first)
    with pytest.raises(UserError) as caught, store.transaction(path) as f:
        store.owned_group(f, "surface/A")
    assert str(caught.value).startswith(
        f"surface/A in {path} was taken over by another landscape command (process 4242 on "
        "other-host) while this command was writing it; two commands cannot write the same group"
    )


def _fail_writes(monkeypatch, code: int = errno.ENOSPC) -> None:
    def write(fd, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "write", write)


def test_a_full_disk_during_a_save_leaves_the_result_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    with store.transaction(path) as f:
        store.write_dataset(store.replace_group(f, "hessian/a"), "trace", 1.0)
    before = path.read_bytes()
    _fail_writes(monkeypatch)
    with pytest.raises(
        WriteError, match=f"^no space left on device while writing {path} .needs about"
    ):
        with store.transaction(path) as f:
            store.write_dataset(store.replace_group(f, "surface/big"), "loss", np.zeros(10**5))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        del data[len(data) // 2 :]
    else:  # a flipped bit in the middle of the array's bytes
        with h5py.File(path, "r") as f:
            offset = f["surface/A/loss"].id.get_chunk_info(0).byte_offset
        data[offset + 400] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def result_file(tmp_path) -> Path:
    path = tmp_path / "r.h5"
    with store.transaction(path) as f:
        store.write_dataset(store.replace_group(f, "surface/A"), "loss", np.linspace(0, 1, 1000))
    return path


def test_a_bit_flipped_array_is_a_read_error_not_a_wrong_value(result_file):
    _damage(result_file, "bit-flipped")
    with h5py.File(result_file, "r") as f, pytest.raises(OSError, match="filter returned failure"):
        f["surface/A/loss"][()]


@pytest.mark.parametrize("how", ["truncated"])
def test_a_damaged_file_is_refused_by_name_and_left_untouched(result_file, how):
    _damage(result_file, how)
    before = result_file.read_bytes()
    with pytest.raises(UserError) as caught, store.transaction(result_file) as f:
        store.replace_group(f, "hessian/b")
    assert str(caught.value).startswith(f"result file {result_file} is damaged (")
    assert f"move it away (mv {result_file} {result_file}.damaged)" in str(caught.value)
    assert result_file.read_bytes() == before
