"""``import landscape`` keeps torch's OpenMP threads from busy-waiting, or says how to (item 3)."""

import subprocess
import sys
import types

import pytest

import landscape


@pytest.fixture
def fresh_env(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    return monkeypatch


def test_imported_before_torch_it_sets_the_passive_policy(fresh_env):
    fresh_env.delitem(sys.modules, "torch", raising=False)
    landscape._passive_openmp_threads()
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_policy_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    landscape._passive_openmp_threads()
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize(("threads", "warns"), [(2, True), (1, False)])
def test_imported_after_torch_it_warns_when_threads_can_spin(fresh_env, recwarn, threads, warns):
    fresh_env.setitem(sys.modules, "torch", types.SimpleNamespace(get_num_threads=lambda: threads))
    landscape._passive_openmp_threads()
    import os

    assert "OMP_WAIT_POLICY" not in os.environ
    messages = [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert bool(messages) == warns
    if warns:
        assert (
            "Import landscape before torch" in messages[0]
            and "OMP_WAIT_POLICY=PASSIVE" in messages[0]
        )


def test_load_is_there_without_importing_torch_at_import_time():
    # A fresh interpreter: this one has long imported torch.
    probe = (
        "import sys, landscape; "
        "assert 'torch' not in sys.modules, 'import landscape imported torch'; "
        "assert callable(landscape.load)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
