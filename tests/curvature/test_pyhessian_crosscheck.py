"""Cross-check against the PyHessian package on the same model and batch (float32, CPU)."""

import numpy as np
import pytest
import torch

from landscape.curvature import hessian_eigenvalues, hessian_trace
from tests.curvature.tiny_models import loss_fn, problem

pyhessian = pytest.importorskip("pyhessian")


@pytest.mark.parametrize("name", ["mlp", "cnn-bn", "residual"])
def test_top_eigenvalue_and_trace_agree_with_pyhessian(name):
    model, x, y = problem(name, samples=40, dtype=torch.float32)
    ours = hessian_eigenvalues(model, loss_fn, x, y, k=1, tol=1e-6)
    trace = hessian_trace(model, loss_fn, x, y, rel_stderr=0.02, max_hvps=1000)

    torch.manual_seed(0)  # PyHessian draws from the global generator
    theirs = pyhessian.hessian(model, loss_fn, data=(x, y), cuda=False)
    top, _ = theirs.eigenvalues(maxIter=1000, tol=1e-7, top_n=1)
    # tol=-inf: its relative-change rule stops at once when the running mean is negative.
    samples = np.array(theirs.trace(maxIter=300, tol=-np.inf))
    assert len(samples) == 300
    model.zero_grad(set_to_none=True)  # PyHessian leaves graph-carrying .grad behind

    assert ours.eigenvalues[0] == pytest.approx(top[0], rel=1e-3)
    their_stderr = samples.std(ddof=1) / np.sqrt(len(samples))
    assert abs(trace.trace - samples.mean()) <= 4 * np.hypot(trace.stderr, their_stderr)
