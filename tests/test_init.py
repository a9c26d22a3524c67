"""``import landscape`` chooses torch's OpenMP wait policy from the load, or says how to."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import landscape

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_env(monkeypatch):
    for name in landscape.OPENMP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("load", "cores", "threads", "expected"),
    [
        (0.0, 2, 2, landscape.IDLE_POLICY),
        (0.3, 2, 2, landscape.IDLE_POLICY),
        (1.0, 2, 2, landscape.BUSY_POLICY),
        (2.0, 2, 2, landscape.BUSY_POLICY),
        (1.0, 2, 1, landscape.IDLE_POLICY),
        (6.0, 16, 8, landscape.IDLE_POLICY),
        (12.0, 16, 8, landscape.BUSY_POLICY),
    ],
)
def test_the_policy_spins_only_where_each_thread_has_a_free_core(load, cores, threads, expected):
    choice = landscape.choose_openmp_policy(load, cores, threads)
    assert choice.variables == expected
    assert f"load {load:.1f}" in choice.reason and f"{threads} threads" in choice.reason


@pytest.mark.parametrize(
    ("loadavg", "runnable", "expected"),
    [
        (0.1, [3, 3, 9, 3, 1], 2.0),  # a load that just started: the average lags
        (3.0, [1, 1, 2], 0.0),  # our own previous run, still in the average
        (0.5, [], 0.5),  # no samples (not Linux): the average
        (0.0, [1], 0.0),
    ],
)
def test_other_load_is_the_median_of_the_tasks_running_now_less_this_one(
    loadavg, runnable, expected
):
    assert landscape.other_load(loadavg, runnable) == expected


def test_imported_before_torch_it_sets_the_policy_the_load_calls_for(fresh_env):
    fresh_env.setattr(os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    # three runnable tasks now: this process and two others (not this machine's real load)
    fresh_env.setattr(landscape, "_runnable_now", lambda samples=5: [3] * samples)
    fresh_env.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    fresh_env.setenv("OMP_NUM_THREADS", "2")
    choice = landscape._choose_openmp_threads()
    assert choice.variables == landscape.BUSY_POLICY
    assert {k: os.environ.get(k) for k in landscape.BUSY_POLICY} == landscape.BUSY_POLICY


@pytest.mark.parametrize("name", landscape.OPENMP_VARIABLES)
def test_a_policy_the_user_set_is_kept(fresh_env, name):
    fresh_env.setenv(name, "12345")
    fresh_env.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    choice = landscape._choose_openmp_threads()
    assert choice.variables == {} and f"kept the user's {name}=12345" in choice.reason
    assert [k for k in landscape.OPENMP_VARIABLES if k in os.environ] == [name]


@pytest.mark.parametrize(("threads", "warns"), [(2, True), (1, False)])
def test_imported_after_torch_it_warns_when_threads_can_spin(fresh_env, recwarn, threads, warns):
    fresh_env.setitem(sys.modules, "torch", types.SimpleNamespace(get_num_threads=lambda: threads))
    landscape._choose_openmp_threads()
    assert not any(k in os.environ for k in landscape.OPENMP_VARIABLES)
    messages = [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert bool(messages) == warns
    if warns:
        assert "Import landscape before torch" in messages[0]


def test_verbose_command_line_says_which_policy_and_why(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_WAIT_POLICY="ACTIVE")
    done = subprocess.run(
        [sys.executable, "-m", "landscape", "-v", "info", str(tmp_path / "missing.h5")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "OpenMP wait policy: nothing set (kept the user's OMP_WAIT_POLICY=ACTIVE)" in (
        done.stderr
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
