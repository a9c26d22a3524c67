"""Stopping on SIGTERM, SIGINT and SIGUSR1 with what is finished saved.

Schedulers send SIGTERM some seconds before SIGKILL (SLURM can be told to send SIGUSR1
ahead of the time limit, ``--signal=USR1@120``); Ctrl-C sends SIGINT. The first of these
signals raises :class:`Interrupted` in the main thread, so that the ``finally`` blocks of
the running command save the finished work; the CLI then says what was saved and exits
with ``128 + signal number`` (SIGINT 130, SIGTERM 143, SIGUSR1 138). A second signal
exits at once (the files on disk stay whole: every write is an atomic replace).

Writes run inside :func:`held`: a signal that arrives during one is acted on when it ends,
so a save is never abandoned half-way by the first signal.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Interrupted(KeyboardInterrupt):
    """Raised by the first stop signal; a KeyboardInterrupt, so ``except Exception`` passes it
    on."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _State:
    received: int | None = None
    raised = False
    held = 0
    saved: str | None = None


_state = _State()


def note_saved(description: str) -> None:
    """What is on disk now (``r.h5:surface/A with 312 of 2601 points``), for the stop message."""
    _state.saved = description


def saved() -> str | None:
    return _state.saved


def _raise_pending() -> None:
    if _state.received is not None and not _state.raised:
        _state.raised = True
        raise Interrupted(_state.received)


def _handle(signum: int, frame) -> None:
    if _state.received is not None:
        what = f"; on disk: {_state.saved}" if _state.saved else ""
        os.write(
            2,
            f"landscape: second {signal.Signals(signum).name}: stopping at once{what}; "
            "rerun the same command to resume from the last save\n".encode(),
        )
        os._exit(128 + signum)
    _state.received = signum
    if _state.held == 0:
        _raise_pending()


@contextmanager
def held() -> Iterator[None]:
    """Hold a first stop signal until the block ends (a second one still exits at once)."""
    _state.held += 1
    try:
        yield
    finally:
        _state.held -= 1
    if _state.held == 0:
        _raise_pending()


@contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for one command (main thread only) and restore the old ones after.

    SIGXFSZ is ignored meanwhile, so that a file-size limit (``ulimit -f``) makes a write fail
    with EFBIG, which is reported like a full disk, instead of killing the process.
    """
    _state.received, _state.raised, _state.held, _state.saved = None, False, 0, None
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; whoever runs us there handles them
        return
    previous = {sig: signal.getsignal(sig) for sig in (*STOP_SIGNALS, signal.SIGXFSZ)}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handle)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
