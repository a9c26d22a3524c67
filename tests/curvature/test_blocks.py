"""Parameter blocks: how they are named, and that each block's operator is the dense sub-matrix."""

import numpy as np
import pytest
import torch
from torch import nn

from landscape.curvature.blocks import block_spectrum, parameter_blocks, storage_name
from landscape.curvature.gauss_newton import CURVATURES
from landscape.errors import UserError
from tests.curvature.test_gauss_newton import dense_fisher, dense_ggn, dense_matrix
from tests.curvature.tiny_models import MODELS, exact_hessian, loss_fn, problem

DENSE = {"hessian": exact_hessian, "ggn": dense_ggn, "fisher": dense_fisher}


def _indices(model, names):
    """Positions of the named parameters in the flat vector of all parameters."""
    offsets, start = {}, 0
    for name, p in model.named_parameters():
        offsets[name] = torch.arange(start, start + p.numel())
        start += p.numel()
    return torch.cat([offsets[name] for name in names])


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.embed = nn.Embedding(5, 4)
        self.attn = nn.MultiheadAttention(4, 1, batch_first=True)
        self.norm = nn.LayerNorm(4)
        self.body = nn.Sequential(nn.Conv1d(4, 4, 1), nn.Linear(4, 2))


def test_layer_blocks_are_the_modules_holding_parameters_by_qualified_name():
    blocks = parameter_blocks(Tiny(), "layer")
    assert list(blocks) == ["<root>", "embed", "attn", "attn.out_proj", "norm", "body.0", "body.1"]
    assert blocks["attn"] == ["attn.in_proj_weight", "attn.in_proj_bias"]
    assert blocks["body.1"] == ["body.1.weight", "body.1.bias"]


def test_type_blocks_group_modules_by_kind_and_attention_keeps_its_projections():
    blocks = parameter_blocks(Tiny(), "type")
    assert list(blocks) == ["conv", "linear", "norm", "embedding", "attention", "other"]
    assert blocks["attention"] == [
        "attn.in_proj_weight",
        "attn.in_proj_bias",
        "attn.out_proj.weight",
        "attn.out_proj.bias",
    ]
    assert blocks["linear"] == ["body.1.weight", "body.1.bias"] and blocks["other"] == ["scale"]


def test_regular_expressions_select_by_parameter_name():
    blocks = parameter_blocks(Tiny(), r"weight$, ^body\.")
    assert blocks["^body\\."] == ["body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias"]
    assert "attn.in_proj_weight" in blocks["weight$"] and "scale" not in blocks["weight$"]


@pytest.mark.parametrize("spec", ["nothing-matches", "(", "a,,b"])
def test_a_block_spec_that_selects_nothing_is_an_error(spec):
    with pytest.raises(UserError, match="--blocks"):
        parameter_blocks(Tiny(), spec)


def test_frozen_parameters_belong_to_no_block():
    model = Tiny()
    model.norm.weight.requires_grad_(False)
    assert parameter_blocks(model, "layer")["norm"] == ["norm.bias"]


def test_block_names_never_contain_the_hdf5_separator():
    assert "/" not in storage_name("a/b") and storage_name("") == "<root>"


@pytest.mark.parametrize("curvature", list(DENSE))
@pytest.mark.parametrize("name", list(MODELS))
def test_every_layer_block_is_the_dense_sub_matrix(name, curvature):
    model, x, y = problem(name)
    full = DENSE[curvature](model, x, y)
    for block, names in parameter_blocks(model, "layer").items():
        op = CURVATURES[curvature](model, loss_fn, x, y, batch_size=11, parameters=names)
        index = _indices(model, names)
        sub = full[index][:, index]
        assert op.names == names
        assert torch.allclose(dense_matrix(op), sub, rtol=0, atol=1e-6 * full.abs().max()), block


def test_a_block_spectrum_has_the_sub_matrix_eigenvalues_and_trace():
    model, x, y = problem("cnn-bn")
    names = parameter_blocks(model, "type")["conv"]
    index = _indices(model, names)
    sub = exact_hessian(model, x, y)[index][:, index]
    op = CURVATURES["hessian"](model, loss_fn, x, y, parameters=names)
    spectrum = block_spectrum(
        "conv",
        op,
        top_k=2,
        bottom_k=1,
        tol=1e-8,
        trace={"method": "krylov-hutch++", "rel_stderr": 1e-3, "max_hvps": 200},
        density={"runs": 1, "steps": 80, "sigma": None},
    )
    exact = np.linalg.eigvalsh(sub.numpy())
    assert np.allclose(spectrum.top.eigenvalues, exact[::-1][:2], rtol=1e-6)
    assert np.allclose(spectrum.bottom.eigenvalues, exact[:1], rtol=1e-6, atol=1e-8)
    assert abs(spectrum.trace.trace - float(sub.trace())) <= 1e-6 * abs(float(sub.trace())) + 1e-9
    assert spectrum.density.nodes.shape[1] == op.dim == 30  # steps capped at the dimension
    assert spectrum.hvp_count == op.hvp_count and spectrum.parameters == names


def test_top_k_is_capped_at_a_small_block_s_dimension():
    model, x, y = problem("mlp")
    op = CURVATURES["hessian"](model, loss_fn, x, y, parameters=["2.bias"])
    assert block_spectrum("bias", op, top_k=5).top.eigenvalues.shape == (3,)
