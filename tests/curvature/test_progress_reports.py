"""The curvature engines report through a callback what they finally return."""

import numpy as np
import pytest
import torch

from landscape.curvature import TRACE_METHODS, lanczos_eigs, slq_density
from tests.curvature.matrix_operator import MatrixOperator


def _operator(dim: int = 120, seed: int = 0) -> MatrixOperator:
    generator = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    spectrum = torch.cat(
        [
            torch.tensor([50.0, 20.0, 10.0]),
            torch.rand(dim - 3, generator=generator, dtype=torch.float64),
        ]
    )
    return MatrixOperator(Q @ torch.diag(spectrum) @ Q.T)


@pytest.mark.parametrize("stop", ["residual", "gap"])
def test_lanczos_reports_each_product_and_ends_on_its_result(stop):
    seen = []
    result = lanczos_eigs(_operator(), 2, tol=1e-8, stop=stop, progress=seen.append)
    assert [s.done for s in seen] == list(range(1, result.hvp_count + 1))
    last = seen[-1]
    assert last.estimate == pytest.approx(result.eigenvalues[0]) and last.target == 1e-8
    assert last.error <= 1e-8 + 1e-10 * 50 / 20 < seen[0].error  # tol, plus the float64 floor
    assert all(s.total is None or s.total <= s.limit for s in seen) and last.total == last.done


def test_lanczos_projects_its_total_from_convergence_not_from_the_product_limit():
    seen = []
    result = lanczos_eigs(
        _operator(dim=400), 3, tol=1e-10, max_hvps=100_000, eigenvectors=False, progress=seen.append
    )
    assert result.converged and result.hvp_count < 200
    assert all(s.limit == 100_000 for s in seen)
    assert all(s.total is None for s in seen[:3])  # before a decay is seen: no made-up total
    projected = [s.total for s in seen if s.total is not None]
    assert projected and max(projected) < 1_000


def test_lanczos_progress_names_and_shows_a_bound_at_the_float64_floor_instead_of_zero():
    seen = []
    lanczos_eigs(_operator(), 2, tol=1e-14, eigenvectors=False, progress=seen.append)
    assert seen[-1].error_name == "rel. eigenvalue error bound"
    assert 0 < seen[-1].error < 1e-9


@pytest.mark.parametrize("method", list(TRACE_METHODS))
def test_trace_reports_its_running_estimate_and_relative_stderr(method):
    seen = []
    result = TRACE_METHODS[method](_operator(), rel_stderr=0.05, progress=seen.append)
    assert seen[-1].done == result.hvp_count
    assert seen[-1].estimate == pytest.approx(result.trace)
    assert seen[-1].error == pytest.approx(result.relative_stderr) and seen[-1].target == 0.05
    assert np.all(np.diff([s.done for s in seen]) == 1)


@pytest.mark.parametrize("lockstep", [False, True])
def test_density_reports_runs_and_products(lockstep):
    seen = []
    density = slq_density(_operator(), runs=2, steps=7, lockstep=lockstep, progress=seen.append)
    assert [s.done for s in seen] == list(range(1, density.hvp_count + 1))
    assert seen[-1].total == 14 and seen[-1].note == "run 2/2"
