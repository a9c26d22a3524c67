"""Writing one file so that it lands whole or not at all, with one clear error when it cannot.

Every file landscape writes (results, checkpoints, run files, figures) is produced in memory
first and handed to :func:`write_atomic` as bytes: a temp file in the same folder, plain
``os.write`` calls, ``fsync``, ``os.replace``. Only these few system calls touch the disk, so
a full disk, a quota, a file-size limit or a folder that became read-only or vanished shows
up as one ``OSError`` here -- never inside HDF5's or torch's own writers, where it used to end
in a cache-flush error or a segmentation fault -- and becomes a :class:`WriteError` that says
what happened, that nothing already on disk was changed, and how to resume.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from pathlib import Path

from landscape import interrupt
from landscape.errors import UserError

NO_SPACE = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "no space left on device (disk quota exceeded)",
    errno.EFBIG: "no space left on device (file size limit, see ulimit -f)",
}
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class WriteError(UserError):
    """A file could not be written; the old file (if any) is untouched.

    ``lost`` (set by the command that knows) says what finished work could not be saved.
    """

    def __init__(
        self, path: Path, reason: str, advice: str, needs_bytes: int | None = None
    ) -> None:
        super().__init__(reason)
        self.path, self.reason, self.advice, self.needs_bytes = (
            Path(path),
            reason,
            advice,
            needs_bytes,
        )
        self.lost: str | None = None

    def __str__(self) -> str:
        needs = ""
        if self.needs_bytes is not None:
            needs = f" (needs about {max(math.ceil(self.needs_bytes / 1e5) / 10, 0.1):.1f} MB)"
        lost = f"; {self.lost}" if self.lost else ""
        return (
            f"{self.reason} while writing {self.path}{needs}; "
            f"nothing already on disk was changed{lost}; {self.advice}"
        )


def write_error(exc: OSError, path: Path, size: int) -> WriteError:
    """The :class:`WriteError` for an ``OSError`` met while writing ``size`` bytes to ``path``."""
    folder = path.parent
    if exc.errno in NO_SPACE:
        return WriteError(
            path, NO_SPACE[exc.errno], "free space and rerun the same command to resume", size
        )
    if exc.errno in NOT_WRITABLE:
        return WriteError(
            path,
            f"output folder {folder} is not writable ({exc.strerror})",
            "make it writable and rerun the same command to resume",
        )
    if exc.errno == errno.ENOENT or not folder.is_dir():
        return WriteError(
            path,
            f"output folder {folder} has disappeared",
            "recreate it and rerun the same command (it resumes from what is still on disk)",
        )
    return WriteError(
        path, f"could not write ({exc.strerror or exc})", "rerun the same command to resume"
    )


def write_target(path: str | Path) -> Path:
    """The file that writing ``path`` replaces: the final target of a symbolic link (the link is
    kept and sees the new contents, as with any program that writes through a link), else
    ``path`` itself. Without this, the atomic rename would put a regular file in the link's
    place and the target would never get the result."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def write_atomic(path: str | Path, data: bytes | bytearray | memoryview) -> None:
    """Replace ``path`` by ``data`` atomically; raise :class:`WriteError` when it cannot.

    A new file gets the usual ``0o666 & ~umask`` mode, a replaced one keeps its mode. A first
    stop signal during the write waits until the file is in place (see :mod:`landscape.interrupt`).
    A symbolic link is written through (:func:`write_target`).
    """
    path = write_target(path)
    folder = path.parent if str(path.parent) else Path(".")
    view = memoryview(data).cast("B")
    size = view.nbytes
    with interrupt.held():
        try:
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=folder
            )
        except OSError as exc:
            raise write_error(exc, path, size) from None
        try:
            try:
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(tmp_name, _mode_for(path))
            os.replace(tmp_name, path)
        except OSError as exc:
            raise write_error(exc, path, size) from None
        finally:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass  # moved into place, or the folder is gone
            except OSError:
                pass  # a folder made read-only meanwhile: the next run removes it
        fsync_folder(folder)


def _mode_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def fsync_folder(folder: Path) -> None:
    """Make a rename durable (best effort: some file systems refuse to fsync a folder)."""
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
