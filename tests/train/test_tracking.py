"""landscape train --track: the run's sharpness every K steps, the same weights as without."""

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main

TINY = ["--arch", "mlp-bn", "--epochs", "3", "--sam-start", "2", "--batch-size", "256"]
TRACK = ["--track", "lambda1,loss", "--track-every", "2", "--track-samples", "64"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_a_tracked_run_has_the_weights_of_an_untracked_one(tmp_path):
    assert main(["train", "--out", str(tmp_path), "--run", "a", *TINY, *TRACK]) == 0
    assert main(["train", "--out", str(tmp_path), "--run", "b", *TINY]) == 0
    a, b = _weights(tmp_path / "a/epoch-003-sam.pt"), _weights(tmp_path / "b/epoch-003-sam.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with h5py.File(tmp_path / "a/track.h5") as f:
        steps = f["track/a/steps"][()]
        assert list(steps) == list(range(2, 3 * 6 + 1, 2))  # 1437 examples: 6 steps an epoch
        assert np.isfinite(f["track/a/lambda1"][()]).all() and "lr" in f["track/a"]


def test_a_resumed_run_continues_its_track_without_duplicate_steps(tmp_path):
    args = ["train", "--out", str(tmp_path), "--run", "r", *TINY, *TRACK, "--save-every", "1"]
    assert main(args) == 0
    with h5py.File(tmp_path / "r/track.h5") as f:
        first = f["track/r/lambda1"][()]
    for late in ("epoch-002-sgd.pt", "epoch-003-sam.pt"):  # killed after epoch 1's save
        (tmp_path / "r" / late).unlink()
    assert main(args) == 0  # resumes from epoch 1 (step 6) and measures steps 8..18 again
    with h5py.File(tmp_path / "r/track.h5") as f:
        assert list(f["track/r/steps"][()]) == list(range(2, 19, 2))
        # the same weights; the first measurement after the restart starts cold, not warm
        np.testing.assert_allclose(f["track/r/lambda1"][()], first, rtol=2e-4)


def test_an_unknown_track_measure_is_one_line_error_before_any_work(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), *TINY, "--track", "lambda1,sharp"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("landscape: error: --track: unknown measure sharp") and "\n" not in err
    assert not any(tmp_path.iterdir())
