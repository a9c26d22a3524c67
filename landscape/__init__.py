"""landscape: sharpness and loss-landscape analysis of PyTorch models.

``landscape.load(path, ...)`` -> ``model, data, metadata`` is the notebook's way in
(:mod:`landscape.api`); ``landscape.Tracker`` measures sharpness inside a training loop
(:mod:`landscape.track`); the numerical functions live in :mod:`landscape.curvature`,
:mod:`landscape.surface`, :mod:`landscape.sharpness` and :mod:`landscape.escape`.
"""

import os
import sys

__version__ = "0.1.0"
__all__ = ["Tracker", "__version__", "load"]

OPENMP_NOTE = (
    "torch was imported before landscape with OMP_WAIT_POLICY unset: its OpenMP threads "
    "busy-wait between operations, which makes analyses several times slower on a CPU that "
    "other processes share (benchmarks/bench_omp_wait.py). Import landscape before torch "
    "(in a notebook: restart the kernel and make 'import landscape' or "
    "'%env OMP_WAIT_POLICY=PASSIVE' the first line), or start Python with OMP_WAIT_POLICY=PASSIVE."
)


def _passive_openmp_threads() -> None:
    """Let idle OpenMP threads sleep instead of spin, as the command line does.

    libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it, so this works only if
    landscape is imported first; otherwise the user is told how to get it. A value the user
    set is always kept.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return
    get_num_threads = getattr(torch, "get_num_threads", None)
    if get_num_threads is not None and get_num_threads() > 1:
        import warnings

        warnings.warn(OPENMP_NOTE, RuntimeWarning, stacklevel=3)


_passive_openmp_threads()


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
