"""Hessians of attention models equal an exact float64 dense Hessian with fused attention enabled.

The references are independent of the kernel switch: the dense Hessian is ``torch.func.hessian``
of the same weights in the library's own explicit attention (Transformers' ``eager``, timm's
``fused_attn = False``), which never calls ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from landscape.curvature import HessianOperator, lanczos_eigs
from landscape.curvature.substitutions import reset_announcement, twice_differentiable
from landscape.curvature.trace import hutchpp_trace
from landscape.loading.external import with_logits
from landscape.losses import make_loss
from tests import external_models as em

FUSED_FIRST = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@pytest.fixture
def fused_attention():
    """Fused kernels enabled and preferred for the whole test, as on a default install."""
    with sdpa_kernel(FUSED_FIRST, set_priority=True):
        yield


def dense_hessian(model: torch.nn.Module, loss_fn, x, y) -> np.ndarray:
    """Row by row, double backward through the eager twin (reverse-over-reverse), checked
    symmetric (and, in the test, against finite differences of the gradient)."""
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    grads = torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])
    rows = [
        torch.cat([h.reshape(-1) for h in torch.autograd.grad(flat[i], params, retain_graph=True)])
        for i in range(flat.numel())
    ]
    dense = torch.stack(rows).numpy()
    np.testing.assert_allclose(dense, dense.T, atol=1e-10)
    return dense


def finite_difference_column(model: torch.nn.Module, loss_fn, x, y, index: int, eps: float = 1e-5):
    """Column ``index`` of the Hessian as central differences of the gradient."""
    params = [p for p in model.parameters() if p.requires_grad]
    sizes = np.cumsum([0] + [p.numel() for p in params])
    which = int(np.searchsorted(sizes, index, side="right") - 1)
    entry = params[which].view(-1)

    def gradient() -> np.ndarray:
        grads = torch.autograd.grad(loss_fn(model(x), y), params)
        return torch.cat([g.reshape(-1) for g in grads]).numpy()

    with torch.no_grad():
        entry[index - sizes[which]] += eps
    plus = gradient()
    with torch.no_grad():
        entry[index - sizes[which]] -= 2 * eps
    minus = gradient()
    with torch.no_grad():
        entry[index - sizes[which]] += eps
    return (plus - minus) / (2 * eps)


def gpt2_pair():
    """The model under test (SDPA attention) and its eager-attention twin, float64."""
    model = with_logits(em.gpt2(attn_implementation="sdpa", dtype=torch.float64), "causal-lm")
    reference = with_logits(em.gpt2(attn_implementation="eager", dtype=torch.float64), "causal-lm")
    reference.load_state_dict(model.state_dict())
    model.transformer.wpe.weight.requires_grad_(False)  # smaller dense Hessian; wte stays (tied)
    x, y = em.token_blocks(count=3, block=8)
    return model, reference, x, y


def vit_pair():
    model = em.vit().double()
    reference = em.vit().double()
    reference.load_state_dict(model.state_dict())
    for block in reference.modules():
        if hasattr(block, "fused_attn"):
            block.fused_attn = False
    model.patch_embed.requires_grad_(False)  # 3 x 16 x 16 x 4 weights: a smaller dense Hessian
    torch.manual_seed(1)
    return (
        model,
        reference,
        torch.randn(4, 3, 32, 32, dtype=torch.float64),
        torch.tensor([0, 1, 2, 1]),
    )


PAIRS = {"gpt2": gpt2_pair, "vit": vit_pair}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_without_the_switch_double_backward_through_fused_attention_fails(name, fused_attention):
    model, _, x, y = PAIRS[name]()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(make_loss()(model(x), y), params, create_graph=True)
    with pytest.raises(RuntimeError, match="not implemented"):
        torch.autograd.grad(grads, params, grad_outputs=[torch.ones_like(g) for g in grads])


def frozen_like(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    for p, q in zip(model.parameters(), reference.parameters()):
        q.requires_grad_(p.requires_grad)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_top_eigenvalues_and_trace_equal_the_dense_float64_hessian(name, fused_attention):
    model, reference, x, y = PAIRS[name]()
    frozen_like(model, reference)
    loss_fn = make_loss()
    dense = dense_hessian(reference, loss_fn, x, y)
    column = finite_difference_column(reference, loss_fn, x, y, index=dense.shape[0] // 2)
    np.testing.assert_allclose(dense[:, dense.shape[0] // 2], column, atol=1e-7)  # the reference
    exact = np.linalg.eigvalsh(dense)
    with HessianOperator(model, loss_fn, x, y) as op:
        assert op.dim == dense.shape[0]
        eig = lanczos_eigs(op, 3, tol=1e-8, eigenvectors=False, max_hvps=op.dim)
        trace = hutchpp_trace(op, sketch_rank=op.dim)  # exact: the sketch spans the space
    np.testing.assert_allclose(np.asarray(eig.eigenvalues), exact[::-1][:3], rtol=1e-6)
    assert trace.trace == pytest.approx(np.trace(dense), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_forward_over_reverse_products_equal_the_dense_hessian(name, fused_attention):
    model, reference, x, y = PAIRS[name]()
    frozen_like(model, reference)
    dense = dense_hessian(reference, make_loss(), x, y)
    v = torch.randn(dense.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with HessianOperator(model, make_loss(), x, y, engine="func") as op:
        np.testing.assert_allclose(op.matvec(v).numpy(), dense @ v.numpy(), rtol=1e-8, atol=1e-10)


def test_gpt2_tied_embedding_and_head_are_one_parameter():
    model, *_ = gpt2_pair()
    assert model.lm_head.weight is model.transformer.wte.weight
    with HessianOperator(model, make_loss(), *em.token_blocks(count=1, block=4)) as op:
        assert op.dim == sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert "lm_head.weight" not in op.parameter_names


def test_the_math_kernel_is_announced_once(caplog, fused_attention):
    model, _, x, y = gpt2_pair()
    reset_announcement()
    with caplog.at_level(logging.INFO, logger="landscape.curvature"):
        with HessianOperator(model, make_loss(), x, y) as op:
            for _ in range(3):
                op.matvec(torch.ones(op.dim, dtype=torch.float64))
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records if "math kernel" in r.getMessage())
    ) == 1


def test_models_without_attention_are_not_announced(caplog):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    reset_announcement()
    with caplog.at_level(logging.INFO, logger="landscape.curvature"):
        with HessianOperator(
            model, F.cross_entropy, torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
        ) as op:
            op.matvec(torch.ones(op.dim))
    assert not any("math kernel" in r.getMessage() for r in caplog.records)


class EncoderClassifier(torch.nn.Module):
    """A sequence classifier built from PyTorch's own nn.TransformerEncoder (nn.MultiheadAttention
    inside, so attention runs in F.multi_head_attention_forward, not in a direct SDPA call)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(3, 4)
        layer = torch.nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def encoder_problem(training: bool):
    torch.manual_seed(0)
    model = EncoderClassifier().double().train(training)
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    return model, x, torch.tensor([0, 1, 1])


def test_without_the_switch_double_backward_through_transformer_encoder_fails(fused_attention):
    model, x, y = encoder_problem(training=False)
    params = list(model.parameters())
    grads = torch.autograd.grad(make_loss()(model(x), y), params, create_graph=True)
    with pytest.raises(RuntimeError, match="not implemented"):
        torch.autograd.grad(grads, params, grad_outputs=[torch.ones_like(g) for g in grads])


@pytest.mark.parametrize("engine", ["cached", "func"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_transformer_encoder_products_equal_the_dense_float64_hessian(
    engine, training, fused_attention
):
    model, x, y = encoder_problem(training)
    loss_fn = make_loss()
    with sdpa_kernel([SDPBackend.MATH]):  # the reference: the math kernel for the whole run
        dense = dense_hessian(model, loss_fn, x, y)
        column = finite_difference_column(model, loss_fn, x, y, index=dense.shape[0] - 5)
    np.testing.assert_allclose(dense[:, -5], column, atol=1e-7)
    v = torch.randn(dense.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with HessianOperator(model, loss_fn, x, y, engine=engine) as op:
        np.testing.assert_allclose(op.matvec(v).numpy(), dense @ v.numpy(), rtol=1e-9, atol=1e-11)
    assert torch.backends.mha.get_fastpath_enabled()  # switched back on after the products


def test_products_silence_torchs_jit_script_warning_and_no_other(recwarn):
    # torch prints it once per process, on its first forward-mode product (it compiles its jvp
    # decompositions with torch.jit.script), so the test raises the same warning itself.
    with twice_differentiable():
        warnings.warn(JIT_SCRIPT_WARNING, FutureWarning, stacklevel=1)
        warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in recwarn] == ["something else"]


JIT_SCRIPT_WARNING = (
    "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`."
)


def activations() -> dict[str, torch.nn.Module]:
    """Every activation module of torch.nn that maps a tensor elementwise or along a dim."""
    special = {
        "Threshold": lambda: torch.nn.Threshold(0.1, 2.0),
        "GLU": lambda: torch.nn.GLU(),  # halves the last dimension (size 2)
        "MultiheadAttention": None,
        "RReLU": lambda: torch.nn.RReLU().eval(),  # deterministic slope
    }
    found = {}
    for name in torch.nn.modules.activation.__all__:
        if name in special:
            if special[name] is not None:
                found[name] = special[name]()
            continue
        cls = getattr(torch.nn, name)
        found[name] = cls(dim=1) if "dim" in cls.__init__.__code__.co_varnames else cls()
    return found


ACTIVATIONS = activations()


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_has_a_correct_second_derivative_in_products(name):
    module = ACTIVATIONS[name].double()
    x = torch.linspace(-4.9, 4.7, 24, dtype=torch.float64).reshape(2, 3, 2, 2)

    def loss(z: torch.Tensor) -> torch.Tensor:
        return module(z).pow(3).sum()

    def gradient(z: torch.Tensor) -> torch.Tensor:
        z = z.clone().requires_grad_(True)
        return torch.autograd.grad(loss(z), z)[0]

    v = torch.cos(torch.arange(24, dtype=torch.float64)).reshape(x.shape)
    with twice_differentiable():
        z = x.clone().requires_grad_(True)
        g = torch.autograd.grad(loss(z), z, create_graph=True)[0]
        hv = torch.autograd.grad(g, z, grad_outputs=v)[0]
    eps = 1e-6
    np.testing.assert_allclose(
        hv.numpy(), ((gradient(x + eps * v) - gradient(x - eps * v)) / (2 * eps)).numpy(), atol=1e-6
    )


def test_hardsigmoid_has_no_double_backward_without_the_substitution():
    z = torch.randn(5, dtype=torch.float64, requires_grad=True)
    g = torch.autograd.grad(F.hardsigmoid(z).pow(3).sum(), z, create_graph=True)[0]
    with pytest.raises(RuntimeError, match="hardsigmoid_backward"):
        torch.autograd.grad(g.sum(), z)


def relu6_twin(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every nn.Hardsigmoid replaced by hand by relu6(x + 3) / 6."""

    class Relu6Hardsigmoid(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu6(x + 3) / 6

    twin = copy.deepcopy(model)
    for parent in twin.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, torch.nn.Hardsigmoid):
                setattr(parent, child_name, Relu6Hardsigmoid())
    assert not any(isinstance(m, torch.nn.Hardsigmoid) for m in twin.modules())
    return twin


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["cached", "func"])
def test_mobilenet_v3_small_products_equal_the_relu6_twin_in_float64(engine, caplog):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=3).double().eval()
    x, y = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 2])
    loss_fn = make_loss()
    twin = relu6_twin(model)
    params = list(twin.parameters())
    grads = torch.autograd.grad(loss_fn(twin(x), y), params, create_graph=True)
    v = [torch.randn_like(p) for p in params]
    expected = torch.cat([h.reshape(-1) for h in torch.autograd.grad(grads, params, v)])
    reset_announcement()
    with caplog.at_level(logging.INFO, logger="landscape.curvature"):
        with HessianOperator(model, loss_fn, x, y, engine=engine) as op:
            got = op.matvec(torch.cat([p.reshape(-1) for p in v]))
            op.matvec(torch.cat([p.reshape(-1) for p in v]))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)
    notes = [r.getMessage() for r in caplog.records if "hardsigmoid" in r.getMessage()]
    assert len(notes) == 1 and "relu6(x + 3) / 6" in notes[0]
