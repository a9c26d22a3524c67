"""Writing one file whole or not at all: a full disk, a read-only or vanished folder."""

from __future__ import annotations

import errno
import os

import pytest

from landscape import atomic
from landscape.atomic import WriteError, write_atomic

OLD = b"old contents that must survive"
NEW = bytes(range(256)) * 4096  # 1 MiB


def _fail_after(monkeypatch, limit: int, code: int) -> None:
    """``os.write`` in landscape.atomic accepts ``limit`` bytes, then raises OSError(code)."""
    written = 0
    real_write = os.write

    def write(fd, data):
        nonlocal written
        room = limit - written
        if room <= 0:
            raise OSError(code, os.strerror(code))
        n = real_write(fd, bytes(data[:room]))
        written += n
        return n

    monkeypatch.setattr(atomic.os, "write", write)


@pytest.mark.parametrize("at_byte", [0, 1, 4096, len(NEW) // 2, len(NEW) - 1])
def test_a_full_disk_at_any_byte_leaves_the_old_file_and_no_temp_file(
    tmp_path, monkeypatch, at_byte
):
    target = tmp_path / "r.h5"
    target.write_bytes(OLD)
    _fail_after(monkeypatch, at_byte, errno.ENOSPC)
    with pytest.raises(WriteError) as caught:
        write_atomic(target, NEW)
    assert str(caught.value) == (
        f"no space left on device while writing {target} (needs about 1.1 MB); "
        "nothing already on disk was changed; free space and rerun the same command to resume"
    )
    assert target.read_bytes() == OLD
    assert os.listdir(tmp_path) == ["r.h5"]


@pytest.mark.parametrize(
    "code, reason",
    [
        (errno.EDQUOT, "no space left on device (disk quota exceeded)"),
        (errno.EFBIG, "no space left on device (file size limit, see ulimit -f)"),
    ],
)
def test_a_quota_or_file_size_limit_reads_like_a_full_disk(tmp_path, monkeypatch, code, reason):
    _fail_after(monkeypatch, 10, code)
    with pytest.raises(WriteError, match=r"^" + reason.replace("(", r"\(").replace(")", r"\)")):
        write_atomic(tmp_path / "new.pt", NEW)
    assert os.listdir(tmp_path) == []


def test_the_lost_work_is_part_of_the_message(tmp_path, monkeypatch):
    _fail_after(monkeypatch, 0, errno.ENOSPC)
    with pytest.raises(WriteError) as caught:
        write_atomic(tmp_path / "r.h5", b"x" * 10)
    caught.value.lost = "12 points finished since the last save (3 s ago) could not be saved"
    assert (
        "was changed; 12 points finished since the last save (3 s ago) could not be saved; free"
        in str(caught.value)
    )


def test_a_read_only_folder_is_named(tmp_path):
    target = tmp_path / "r.h5"
    target.write_bytes(OLD)
    tmp_path.chmod(0o555)
    try:
        if os.access(tmp_path, os.W_OK) and os.geteuid() == 0:
            pytest.skip("root with CAP_DAC_OVERRIDE writes into read-only folders")
        with pytest.raises(WriteError, match=f"output folder {tmp_path} is not writable"):
            write_atomic(target, NEW)
    finally:
        tmp_path.chmod(0o755)
    assert target.read_bytes() == OLD


def test_a_read_only_folder_is_named_also_for_root(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(
        WriteError, match=f"output folder {tmp_path} is not writable .Permission denied."
    ):
        write_atomic(tmp_path / "r.h5", NEW)


def test_a_vanished_folder_is_named(tmp_path):
    gone = tmp_path / "gone"
    with pytest.raises(WriteError, match=f"output folder {gone} has disappeared while writing"):
        write_atomic(gone / "r.h5", NEW)


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a", b"1")
        assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644
        (tmp_path / "a").chmod(0o600)
        write_atomic(tmp_path / "a", b"2")
        assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "a").read_bytes() == b"2"
    finally:
        os.umask(mask)


def test_a_symbolic_link_is_written_through_and_kept(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "real.bin"
    target.write_bytes(OLD)
    link = tmp_path / "link.bin"
    link.symlink_to(os.path.join("store", "real.bin"))  # relative, as ln -s makes it
    write_atomic(link, NEW)
    assert link.is_symlink() and os.readlink(link) == os.path.join("store", "real.bin")
    assert target.read_bytes() == NEW
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
