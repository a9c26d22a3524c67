import pytest


@pytest.fixture(autouse=True)
def _tiny_models_use_one_thread(one_thread):
    """Every curvature test runs on one intra-op thread (see tests/conftest.py)."""
    yield
