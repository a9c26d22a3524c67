"""The Hessian operator over two Gloo ranks is the operator of one process.

Each rank sums over its share of the examples with the global weights and the partial
products are all-reduced, so eigenvalues, the trace estimate (same probes) and the density
equal one process's to 1e-10 (float64) and 1e-5 (float32), and every rank holds the same answer.
"""

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
