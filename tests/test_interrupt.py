"""Stop signals: the first raises Interrupted (held during writes), a second exits at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from landscape import interrupt

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGUSR1, 138)]
)
def test_a_stop_signal_raises_interrupted_with_its_exit_status(sig, status):
    with interrupt.handling(), pytest.raises(interrupt.Interrupted) as caught:
        os.kill(os.getpid(), sig)
        signal.sigtimedwait([], 0)  # let the handler run here, not somewhere later
    assert caught.value.exit_status == status
    assert caught.value.name == signal.Signals(sig).name


def test_a_signal_during_a_write_is_acted_on_when_the_write_ends():
    finished = False
    with interrupt.handling(), pytest.raises(interrupt.Interrupted):
        with interrupt.held():
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)
            finished = True  # still running: the write goes on to its end
    assert finished


def test_the_previous_handlers_and_sigxfsz_come_back_after_the_command():
    before = {s: signal.getsignal(s) for s in (*interrupt.STOP_SIGNALS, signal.SIGXFSZ)}
    with interrupt.handling():
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    assert {s: signal.getsignal(s) for s in before} == before


SECOND_SIGNAL = textwrap.dedent(
    """
    import os, signal, time
    from landscape import interrupt
    with interrupt.handling():
        interrupt.note_saved("r.h5:surface/A with 7 of 9 points done")
        with interrupt.held():  # a save in progress: the first signal waits for it
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            print("not reached")
    """
)


def test_a_second_signal_exits_at_once_with_its_status():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130
    assert done.stdout == ""
    assert done.stderr == (
        "landscape: second SIGINT: stopping at once; on disk: r.h5:surface/A with 7 of 9 points "
        "done; rerun the same command to resume from the last save\n"
    )
