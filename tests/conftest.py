"""Suite-wide setup: OpenMP threads must not busy-wait on a shared 2-core machine.

Set before any test module imports torch (conftest files are imported first).
"""

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one intra-op thread; on a busy CPU extra threads only spin."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
