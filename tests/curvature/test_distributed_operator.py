"""The Hessian operator over two Gloo ranks is the operator of one process.

Each rank sums over its share of the examples with the global weights and the partial
products are all-reduced, so eigenvalues, the trace estimate (same probes) and the density
equal one process's to 1e-10 (float64) and 1e-5 (float32), and every rank holds the same answer.
"""

import time

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from landscape.curvature import TRACE_METHODS, HessianOperator, lanczos_eigs
from landscape.curvature.density import slq_density
from landscape.parallel import SINGLE
from tests.curvature.tiny_models import loss_fn, problem
from tests.ranks import run_ranks

pytestmark = pytest.mark.slow

SAMPLES = 37  # uneven shares (18 + 19) and an uneven last batch


def analyse(partition, dtype, loader: bool) -> dict:
    torch.set_num_threads(1)
    model, x, y = problem("residual", samples=SAMPLES, dtype=dtype)
    if loader:
        data = DataLoader(TensorDataset(x, y), batch_size=6)
        op = HessianOperator(model, loss_fn, batches=data, partition=partition)
    else:
        op = HessianOperator(model, loss_fn, x, y, batch_size=5, partition=partition)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(1), dtype=dtype)
    eig = lanczos_eigs(op, 3, tol=1e-8, seed=0)
    bottom = lanczos_eigs(op, 2, which="bottom", tol=1e-8, seed=0)
    trace = TRACE_METHODS["hutch++"](op, rel_stderr=1e-9, max_hvps=60, seed=0)
    density = slq_density(op, runs=2, steps=12, seed=0)
    return {
        "product": op.matvec(v).double(),
        "gradient": op.gradient(),
        "eigenvalues": torch.as_tensor(eig.eigenvalues, dtype=torch.float64),
        "bottom": torch.as_tensor(bottom.eigenvalues, dtype=torch.float64),
        "trace": torch.tensor([trace.trace, trace.stderr], dtype=torch.float64),
        "density": torch.as_tensor(density.values, dtype=torch.float64),
        "nodes": torch.as_tensor(density.nodes, dtype=torch.float64),
        "hvp_count": op.hvp_count,
        "examples": sum(b[0].shape[0] for b in op.batches),
        "reduce_s": len(op.collective_seconds),
    }


CASES = [(torch.float64, False), (torch.float32, True)]  # tensors, and a DataLoader


@pytest.fixture(scope="module", params=CASES, ids=["float64", "float32-loader"])
def results(request):
    dtype, loader = request.param
    return dtype, analyse(SINGLE, dtype, loader), run_ranks(analyse, 2, dtype, loader)


QUANTITIES = ["product", "gradient", "eigenvalues", "bottom", "trace", "density", "nodes"]


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_two_ranks_give_the_answer_of_one_process(results, quantity):
    dtype, one, (rank0, _) = results
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    scale = one[quantity].abs().max()
    assert (rank0[quantity] - one[quantity]).abs().max() <= rtol * scale


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_every_rank_holds_the_same_answer(results, quantity):
    _, _, (rank0, rank1) = results
    assert torch.equal(rank0[quantity], rank1[quantity])
    assert rank0["hvp_count"] == rank1["hvp_count"]


def test_each_rank_sums_over_its_share_only(results):
    _, one, (rank0, rank1) = results
    assert (rank0["examples"], rank1["examples"]) == (18, 19)  # range(0, 18), range(18, 37)
    assert one["examples"] == SAMPLES and one["reduce_s"] == 0
    # one all-reduce per pass: a product, or a batch of products (HessianOperator.matmat)
    assert 0 < rank0["reduce_s"] <= rank0["hvp_count"]


class _Slowed(HessianOperator):
    """An operator that idles after its single products (``slow="matvec"``) or its batched ones
    (``"matmat"``). Idling after the all-reduce is seen by this rank's clock alone, so that
    each rank, timing alone, would choose another Hutchinson block size."""

    def __init__(self, *args, slow: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slow = slow

    def matvec(self, v):
        out = super().matvec(v)
        if self.slow == "matvec":
            time.sleep(0.2)
        return out

    def matmat(self, V):
        out = super().matmat(V)
        if self.slow == "matmat":
            time.sleep(0.4)
        return out


def trace_with_disagreeing_timings(partition) -> torch.Tensor:
    torch.set_num_threads(1)
    model, x, y = problem("residual", samples=SAMPLES, dtype=torch.float64)
    op = _Slowed(model, loss_fn, x, y, batch_size=5, partition=partition, slow="")
    op.matvec(torch.ones(op.dim, dtype=torch.float64))  # graphs built: the trials time products
    op.slow = "matmat" if partition.rank == 0 else "matvec"  # rank 0 alone would keep 1, rank 1 4
    trace = TRACE_METHODS["hutchinson"](op, rel_stderr=1e-9, max_hvps=12, seed=0)
    return torch.tensor([trace.trace, trace.stderr, op.hvp_count], dtype=torch.float64)


def test_ranks_that_time_blocks_differently_still_run_the_same_products():
    # Each product is an all-reduce of the block's size: a block size chosen per rank from its
    # own timings would make the collectives mismatch (gloo aborts); the writer's choice holds.
    first, second = run_ranks(trace_with_disagreeing_timings, 2)
    assert torch.equal(first, second)
