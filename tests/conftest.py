"""Suite-wide setup: OpenMP threads must not busy-wait on a shared 2-core machine.

Set before any test module imports torch (conftest files are imported first).
"""

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Measured batch sizes are cached under XDG_CACHE_HOME: one cache for the session (each
    model is probed once), never the user's own."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one intra-op thread; on a busy CPU extra threads only spin."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
