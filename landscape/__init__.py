"""landscape: sharpness and loss-landscape analysis of PyTorch models.

``landscape.load(path, ...)`` -> ``model, data, metadata`` is the notebook's way in
(:mod:`landscape.api`); ``landscape.Tracker`` measures sharpness inside a training loop
(:mod:`landscape.track`); the numerical functions live in :mod:`landscape.curvature`,
:mod:`landscape.surface`, :mod:`landscape.sharpness` and :mod:`landscape.escape`.
"""

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

__version__ = "0.1.0"
__all__ = ["Tracker", "__version__", "load", "openmp_choice"]

OPENMP_NOTE = (
    "torch was imported before landscape with OMP_WAIT_POLICY unset: its OpenMP threads "
    "spin while they wait for work, which makes analyses several times slower on a CPU that "
    "other processes share (docs/performance.md). Import landscape before torch (in a "
    "notebook: restart the kernel and make 'import landscape' the first line), or start Python "
    "with OMP_WAIT_POLICY=PASSIVE when the machine is shared."
)
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@dataclass(frozen=True)
class OpenMPChoice:
    """What ``import landscape`` did about torch's OpenMP wait policy, and why."""

    variables: dict[str, str]  # what landscape set (empty: nothing)
    reason: str

    def describe(self) -> str:
        what = " ".join(f"{k}={v}" for k, v in self.variables.items()) or "nothing set"
        return f"OpenMP wait policy: {what} ({self.reason})"


# What the rule sets on each side (docs/performance.md, benchmarks/bench_omp_wait.py).
IDLE_POLICY: dict[str, str] = {"GOMP_SPINCOUNT": "10000"}
BUSY_POLICY: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
SLACK = 0.5  # cores of other load tolerated beyond what the threads leave free


def other_load(loadavg: float, runnable: Sequence[int] | None) -> float:
    """How many cores other processes keep busy, as seen when landscape starts.

    ``runnable`` are a few samples of the kernel's count of runnable tasks (``/proc/loadavg``,
    this process included): their median less this process is the load *now*. The one-minute
    load average (``os.getloadavg``) is only the fallback where there are no samples: it lags
    by a minute both ways (a load that has just started is not in it yet, our own previous
    run still is), and a job starts now.
    """
    if not runnable:
        return float(loadavg)
    middle = sorted(runnable)[len(runnable) // 2]
    return float(max(middle - 1, 0))


def choose_openmp_policy(load: float, cores: int, threads: int) -> OpenMPChoice:
    """The wait policy for ``threads`` OpenMP threads on ``cores`` cores that others load.

    Measured in benchmarks/bench_omp_wait.py (docs/performance.md): while every thread has a
    free core, threads that spin briefly between parallel regions are fastest; when other
    processes need the cores, a spinning thread takes a core from a thread with work, and
    threads that sleep at once are fastest.
    """
    if load + threads <= cores + SLACK:
        variables, why = IDLE_POLICY, "a free core for each thread: brief spinning"
    else:
        variables, why = BUSY_POLICY, "too few free cores: idle threads sleep at once"
    return OpenMPChoice(
        dict(variables),
        f"load {load:.1f} from other processes on {cores} cores, {threads} threads: {why}",
    )


def _thread_count(cores: int) -> int:
    """The threads torch will start: OMP_NUM_THREADS if set, else one per core."""
    try:
        return max(int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0]), 1)
    except ValueError:
        return cores


def _runnable_now(samples: int = 5) -> list[int]:
    """A few readings, 1 ms apart, of the runnable tasks (Linux; empty elsewhere)."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return []
        if i + 1 < samples:
            time.sleep(0.001)
    return counts


_choice = OpenMPChoice({}, "not chosen yet")


def openmp_choice() -> OpenMPChoice:
    """The wait policy ``import landscape`` chose (``-v`` on the command line prints it)."""
    return _choice


def _choose_openmp_threads() -> OpenMPChoice:
    """Set torch's OpenMP wait policy for this machine's load, before torch loads it.

    libgomp reads its variables once, when torch loads it, so this works only if landscape
    is imported first; otherwise the user is told how to get it. A value the user set for
    any of them is always kept.
    """
    user = {k: os.environ[k] for k in OPENMP_VARIABLES if k in os.environ}
    if user:
        what = " ".join(f"{k}={v}" for k, v in user.items())
        return OpenMPChoice({}, f"kept the user's {what}")
    torch = sys.modules.get("torch")
    if torch is not None:
        get_num_threads = getattr(torch, "get_num_threads", None)
        if get_num_threads is not None and get_num_threads() > 1:
            import warnings

            warnings.warn(OPENMP_NOTE, RuntimeWarning, stacklevel=3)
        return OpenMPChoice({}, "torch was imported first: too late to choose")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    load = other_load(os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, _runnable_now())
    choice = choose_openmp_policy(load, cores, _thread_count(cores))
    os.environ.update(choice.variables)
    return choice


_choice = _choose_openmp_threads()


def __getattr__(name: str):
    # ``landscape.load`` imports torch only when used, so ``import landscape`` (and the
    # command line's --help) stays fast and can still set OMP_WAIT_POLICY before torch loads.
    if name == "load":
        from landscape.api import load

        return load
    if name == "Tracker":
        from landscape.track import Tracker

        return Tracker
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")
