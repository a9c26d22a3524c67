"""The Tracker on two Gloo ranks measures what one process measures, and one rank writes.

Every rank passes the same examples; each sums over its share (landscape.parallel.Partition)
and the sums are all-reduced in the engines, so the values equal one process's to rounding
(the trace: within its standard error).
"""

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import landscape
from landscape.parallel import SINGLE
from tests.ranks import run_ranks

pytestmark = pytest.mark.slow

MEASURES = "lambda1,top-k,trace,worst-case,gradient-norm,loss"


def track(partition, out) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 3))
    x = torch.randn(37, 5, generator=torch.Generator().manual_seed(1))  # shares of 18 and 19
    y = torch.randint(0, 3, (37,), generator=torch.Generator().manual_seed(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = landscape.Tracker(
        model, nn.functional.cross_entropy, x, y, every=2, measures=MEASURES, k=2,
        out=out, name="ddp", batch_size=8, partition=partition, optimizer=opt,
    )  # fmt: skip
    for step in range(1, 5):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tracker.step(step)
    return {k: np.asarray(v) for k, v in tracker.result.series.items()}


def test_two_ranks_measure_what_one_process_measures_and_rank_0_writes(tmp_path):
    one = track(SINGLE, tmp_path / "one.h5")
    ranks = run_ranks(track, 2, tmp_path / "two.h5")
    for rank in ranks:
        for key in ("lambda1", "top_k", "worst_case", "gradient_norm", "loss"):
            np.testing.assert_allclose(rank[key], one[key], rtol=1e-5, err_msg=key)
        # Hutch++ stops when its standard error is small enough: float32 rounding of the
        # products can move that decision by a sample, so the two agree within the error
        spread = 3 * np.hypot(rank["trace_stderr"], one["trace_stderr"])
        assert np.all(np.abs(rank["trace"] - one["trace"]) <= spread)
    with h5py.File(tmp_path / "two.h5") as f:
        assert list(f["track/ddp/steps"][()]) == [2, 4]
        assert f["track/ddp"].attrs["world_size"] == 2
