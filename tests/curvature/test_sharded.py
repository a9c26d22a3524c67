"""Curvature of a model sharded with FSDP2 over 2 and 3 Gloo ranks is one process's.

Each rank loads only its slices of the weights (:func:`landscape.sharding.load_sharded`),
the Krylov vectors are sharded like the parameters, and the products are central differences
of FSDP gradients; the top eigenvalues, the Hutch++ trace with the same probes and the density
nodes equal the exact float64 answers of one process (double backward on the whole model,
the same probes through :meth:`ParameterSpace.whole`) to 1e-6, and the stored error bounds
cover the eigenvalues' true error. Both models have a parameter count that divides by neither 2
nor 3.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.curvature import TRACE_METHODS, HessianOperator, lanczos_eigs, slq_density
from landscape.curvature.vectors import ParameterSpace
from tests.ranks import run_ranks

pytestmark = pytest.mark.slow

SAMPLES = 19


def cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.Tanh(),
        nn.Conv2d(3, 4, 3),
        nn.Flatten(),
        nn.Linear(64, 5),
    )
    model[1].running_mean.uniform_(-0.5, 0.5)  # saved and loaded, not left at their defaults
    model[1].running_var.uniform_(0.5, 2.0)
    return model


def gpt2() -> nn.Module:
    from tests.external_models import gpt2 as tiny_gpt2

    model = tiny_gpt2(seed=0, attn_implementation="eager")
    model.register_forward_hook(lambda module, args, output: output.logits)
    return model


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


MODELS = {"cnn": (cnn, F.cross_entropy), "gpt2": (gpt2, lm_loss)}


def examples(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if kind == "cnn":
        return torch.randn(SAMPLES, 1, 8, 8, generator=g), torch.randint(
            0, 5, (SAMPLES,), generator=g
        )
    tokens = torch.randint(0, 64, (SAMPLES, 9), generator=g)
    return tokens[:, :8], tokens[:, 1:]


def save(kind: str, folder) -> str:
    from safetensors.torch import save_file

    build, _ = MODELS[kind]
    if kind == "gpt2":
        build().save_pretrained(folder)
        return str(folder)
    path = folder / "cnn.safetensors"
    save_file({k: v.contiguous() for k, v in build().state_dict().items()}, str(path))
    return str(path)


def analyses(op) -> dict:
    eig = lanczos_eigs(op, 2, tol=1e-5, seed=0, eigenvectors=False, max_hvps=80)
    trace = TRACE_METHODS["hutch++"](op, sketch_rank=3, rel_stderr=1e-12, max_hvps=9, seed=3)
    density = slq_density(op, runs=1, steps=6, seed=5)
    return {
        "eigenvalues": eig.eigenvalues.tolist(),
        "converged": eig.converged,
        "bounds": eig.error_bounds.tolist(),
        "trace": trace.trace,
        "nodes": density.nodes.tolist(),
    }


def inputs(kind: str):
    x, y = examples(kind)
    return (x.double() if kind == "cnn" else x), y


def sharded(partition, weights: dict[str, str], bad: str) -> dict:
    from landscape.curvature.sharded import ShardedHessianOperator
    from landscape.errors import UserError
    from landscape.sharding import load_sharded

    answers = {}
    for kind, path in weights.items():
        build, loss = MODELS[kind]
        model, plan = load_sharded(build, path, partition, dtype=torch.float64)
        op = ShardedHessianOperator(model, loss, *inputs(kind), batch_size=16, partition=partition)
        answers[kind] = {
            **analyses(op),
            "local_dim": op.space.local_dim,
            "dim": op.dim,
            "plan": plan.attributes(),
            "product": op.provenance(),
            "products": op.hvp_count,
            "seconds": sum(op.product_seconds),
        }
    try:
        load_sharded(MODELS["cnn"][0], bad, partition)
    except UserError as exc:
        answers["bad"] = str(exc)
    return answers


def reference(kind: str) -> dict:
    build, loss = MODELS[kind]
    op = HessianOperator(build().double().eval(), loss, *inputs(kind), batch_size=16)
    op.space = ParameterSpace.whole(op.parameter_names, op.sizes)
    return analyses(op)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("sharded")
    weights = {"cnn": save("cnn", folder), "gpt2": save("gpt2", folder / "gpt2")}
    state = cnn().state_dict()
    state["5.weight"] = state["5.weight"][:, :10].contiguous()  # another model's layer
    save_file(state, str(folder / "bad.safetensors"))
    return weights, str(folder / "bad.safetensors")


@pytest.fixture(scope="module")
def expected():
    return {kind: reference(kind) for kind in MODELS}


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_curvature_is_one_process_float64_answer(saved, expected, world):
    weights, bad = saved
    ranks = run_ranks(sharded, world, weights, bad, timeout=600)
    for kind in MODELS:
        dim = ranks[0][kind]["dim"]
        assert kind != "cnn" or dim % 2 and dim % 3  # 473 parameters: uneven shards
        assert sum(r[kind]["local_dim"] for r in ranks) == dim  # no rank holds a whole vector
        assert all(r[kind]["local_dim"] < dim for r in ranks)
        want = expected[kind]
        for answer in (r[kind] for r in ranks):
            assert answer["plan"]["world_size"] == world and answer["plan"]["sharded"]
            assert answer["product"]["product"] == "finite-difference"
            assert answer["converged"]  # within tol 1e-5 despite the products' error
            got = torch.tensor(answer["eigenvalues"])
            torch.testing.assert_close(got, torch.tensor(want["eigenvalues"]), rtol=1e-6, atol=0)
            error = (got - torch.tensor(want["eigenvalues"])).abs()
            assert bool((error <= torch.tensor(answer["bounds"])).all())  # honest bounds
            assert answer["trace"] == pytest.approx(want["trace"], rel=1e-6)
            nodes, reference_nodes = torch.tensor(answer["nodes"]), torch.tensor(want["nodes"])
            torch.testing.assert_close(nodes, reference_nodes, rtol=1e-6, atol=1e-8)
    # a checkpoint of another shape stops every rank with the same one line
    messages = {r["bad"] for r in ranks}
    assert len(messages) == 1
    (message,) = messages
    assert "5.weight has shape [5, 10]" in message and "\n" not in message
