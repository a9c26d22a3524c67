"""HessianOperator: exact products, exact batch weighting, BatchNorm modes, no side effects."""

import pytest
import torch
from torch.autograd.function import once_differentiable
from torch.utils.data import DataLoader, TensorDataset

from landscape.curvature import HessianOperator
from landscape.errors import UserError
from tests.curvature.tiny_models import MODELS, loss_fn, problem, reference


def _random_vector(dim: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("engine", ["cached", "func", "auto"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_engine_equals_the_exact_hessian_times_v(name, engine):
    model, x, y, H = reference(name)
    op = HessianOperator(model, loss_fn, x, y, batch_size=len(x), engine=engine)
    for seed in (1, 2):
        v = _random_vector(op.dim, seed)
        assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-12 * H.abs().max())
    assert op.hvp_count == 2


@pytest.mark.parametrize("engine", ["cached", "func"])
@pytest.mark.parametrize("name", list(MODELS))
def test_uneven_batches_equal_the_one_batch_hessian_of_the_same_samples(name, engine):
    model, x, y, H = reference(name, samples=30)
    op = HessianOperator(model, loss_fn, x, y, batch_size=7, engine=engine)  # 7+7+7+7+2
    assert len(op.batches) == 5 and op.batches[-1][0].shape[0] == 2
    v = _random_vector(op.dim)
    assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-12 * H.abs().max())


def test_graphs_beyond_the_memory_budget_are_rebuilt_and_still_exact():
    model, x, y, H = reference("cnn-bn")
    op = HessianOperator(model, loss_fn, x, y, batch_size=10, engine="cached", memory_budget=0)
    v = _random_vector(op.dim)
    assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-12)
    assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-12)
    assert len(op.engine.graphs) == 0


def test_auto_keeps_graphs_within_the_budget_and_rebuilds_the_rest():
    model, x, y, H = reference("mlp")
    lean = HessianOperator(model, loss_fn, x, y, batch_size=10, memory_budget=0)
    roomy = HessianOperator(model, loss_fn, x, y, batch_size=10)
    v = _random_vector(lean.dim)
    for op in (lean, roomy):
        assert op.engine_name == "cached"
        assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-12)
    assert len(lean.engine.graphs) == 0 and len(roomy.engine.graphs) == len(roomy.batches)


def _no_double_backward(monkeypatch):
    from landscape.curvature.hvp import CachedGraphEngine

    def product(self, index, v_parts):
        raise RuntimeError("derivative for aten::something is not implemented")

    monkeypatch.setattr(CachedGraphEngine, "product", product)


def test_auto_falls_back_to_forward_over_reverse_without_double_backward(monkeypatch):
    model, x, y, H = reference("mlp")
    _no_double_backward(monkeypatch)
    op = HessianOperator(model, loss_fn, x, y, batch_size=10)
    v = _random_vector(op.dim)
    assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-12)
    assert op.engine_name == "func"


def test_an_explicitly_cached_engine_reports_a_missing_double_backward(monkeypatch):
    model, x, y = problem("mlp")
    _no_double_backward(monkeypatch)
    op = HessianOperator(model, loss_fn, x, y, engine="cached")
    with pytest.raises(RuntimeError, match="not implemented"):
        op.matvec(_random_vector(op.dim))


class _CubeOnce(torch.autograd.Function):
    """x**3 with a backward that autograd cannot differentiate again."""

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x * x * grad

    @staticmethod
    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        return 3 * x * x * tangent


@pytest.mark.parametrize("engine", ["auto", "cached", "func"])
def test_a_once_differentiable_backward_is_an_error_not_a_silently_wrong_hessian(engine):
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3).double()
    model = torch.nn.Sequential(linear, _Lambda(_CubeOnce.apply))
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))
    op = HessianOperator(model, loss_fn, x, y, engine=engine)
    with pytest.raises(UserError, match="once_differentiable"):
        op.matvec(_random_vector(op.dim))


class _Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("engine", ["cached", "func"])
def test_bn_train_mode_uses_batch_statistics_and_leaves_running_statistics_alone(engine):
    model, x, y = problem("cnn-bn")
    bn = model[1]
    before = [b.clone() for b in bn.buffers()]
    H_train = reference("cnn-bn", bn_mode="train")[3]
    H_eval = reference("cnn-bn")[3]
    op = HessianOperator(model, loss_fn, x, y, batch_size=len(x), bn_mode="train", engine=engine)
    v = _random_vector(op.dim)
    for _ in range(2):  # the kept graph stays usable after the statistics are restored
        assert torch.allclose(op.matvec(v), H_train @ v, rtol=0, atol=1e-12)
    assert not torch.allclose(H_train, H_eval)
    assert all(torch.equal(a, b) for a, b in zip(before, bn.buffers()))
    assert not model.training


def test_the_model_mode_is_restored_after_products():
    model, x, y = problem("cnn-bn")
    model.train()
    op = HessianOperator(model, loss_fn, x, y)
    op.matvec(_random_vector(op.dim))
    assert model.training and model[1].training


def test_weight_decay_adds_a_multiple_of_the_identity():
    model, x, y, H = reference("mlp")
    op = HessianOperator(model, loss_fn, x, y, weight_decay=5e-4)
    v = _random_vector(op.dim)
    assert torch.allclose(op.matvec(v), H @ v + 5e-4 * v, rtol=0, atol=1e-12)


def test_a_dataloader_gives_the_same_operator_as_tensors():
    model, x, y, H = reference("residual", samples=25)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)
    op = HessianOperator(model, loss_fn, batches=loader)
    v = _random_vector(op.dim)
    assert op.num_samples == 25
    assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-12)


def test_float32_models_give_float32_accurate_products():
    model, x, y, H = reference("cnn-bn")
    model32 = model.float()
    op = HessianOperator(model32, loss_fn, x.float(), y, batch_size=11)
    v = _random_vector(op.dim)
    hv = op.matvec(v)
    assert hv.dtype == torch.float64
    assert torch.linalg.norm(hv - H @ v) <= 1e-5 * torch.linalg.norm(H @ v)


def test_named_splits_a_flat_vector_by_parameter():
    model, x, y = problem("mlp")
    op = HessianOperator(model, loss_fn, x, y)
    parts = op.named(torch.arange(op.dim, dtype=torch.float64))
    assert list(parts) == [n for n, _ in model.named_parameters()]
    assert parts["0.weight"].shape == (6, 4)
    assert parts["2.bias"].tolist() == list(range(op.dim - 3, op.dim))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"samples": 0}, "no examples"),
        ({"engine": "fast"}, "engine"),
        ({"bn_mode": "frozen"}, "bn_mode"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    model, x, y = problem("mlp", samples=kwargs.pop("samples", 10))
    with pytest.raises(ValueError, match=message):
        HessianOperator(model, loss_fn, x, y, **kwargs)


def test_a_vector_of_the_wrong_length_is_refused():
    model, x, y = problem("mlp")
    op = HessianOperator(model, loss_fn, x, y)
    with pytest.raises(ValueError, match="length"):
        op.matvec(torch.zeros(op.dim + 1, dtype=torch.float64))


@pytest.mark.parametrize("engine", ["cached", "func"])
def test_eval_batchnorm_products_equal_those_of_the_fused_kernel(engine):
    """Eval-mode BatchNorm is differentiated as its affine map; the Hessian must not change."""
    from torch.func import functional_call, hessian

    model, x, y = problem("cnn-bn")
    bn = model[1]
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():  # statistics and affine parameters far from their initial values
        for tensor in (bn.running_mean, bn.weight, bn.bias):
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype))
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=generator).double() + 0.1)
    names = [n for n, _ in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    sizes = [p.numel() for p in model.parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss_of(theta):
        parts = [t.view(s) for t, s in zip(torch.split(theta, sizes), shapes)]
        return loss_fn(functional_call(model, dict(zip(names, parts)), (x,)), y)

    H = hessian(loss_of)(flat)
    op = HessianOperator(model, loss_fn, x, y, engine=engine)
    v = _random_vector(op.dim)
    assert torch.allclose(op.matvec(v), H @ v, rtol=0, atol=1e-11)
    assert "forward" not in vars(bn)  # the module's own forward is back


def test_eval_batchnorm_as_an_affine_map_keeps_the_float32_digits_of_the_fused_kernel():
    """A trained BatchNorm's running mean can be large against the spread of its input; the
    affine map must centre first, as the kernel does, not subtract ``mu * s`` from ``x * s``."""
    from landscape.curvature.hvp import _frozen_batchnorm_forward

    bn = torch.nn.BatchNorm2d(4).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        bn.running_mean.fill_(300.0)
        bn.running_var.fill_(1e-2)
    x = 300.0 + 0.1 * torch.randn(8, 4, 5, 5, generator=generator)
    exact = torch.nn.functional.batch_norm(
        x.double(), bn.running_mean.double(), bn.running_var.double(),
        bn.weight.double(), bn.bias.double(), eps=bn.eps,
    )  # fmt: skip
    kernel, mine = bn(x), _frozen_batchnorm_forward(bn)(x)
    assert (mine.double() - exact).abs().max() <= 2 * (kernel.double() - exact).abs().max()


def test_the_cost_note_quotes_measured_times_not_constants():
    model, x, y = problem("mlp")
    op = HessianOperator(model, loss_fn, x, y)
    assert "gradients" not in op.cost_note()  # nothing measured yet
    for _ in range(3):
        op.matvec(_random_vector(op.dim))
    assert len(op.product_seconds) == 3 and op.gradient_seconds() > 0
    assert "gradients over the same examples" in op.cost_note()
    assert "measured" in op.cost_note()


def test_products_inside_an_outer_evaluation_context_leave_the_model_intact():
    from landscape.curvature.hvp import evaluation_context

    model, x, y = problem("cnn-bn")
    op = HessianOperator(model, loss_fn, x, y)
    v = _random_vector(op.dim)
    expected = op.matvec(v)
    with evaluation_context(model, "eval"):
        assert torch.allclose(op.matvec(v), expected, rtol=0, atol=1e-12)
    assert "forward" not in vars(model[1])


def test_a_non_finite_product_is_a_clear_user_error():
    from landscape.errors import UserError

    model = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
    op = HessianOperator(
        model, torch.nn.functional.cross_entropy, x, y, batch_size=4, engine="cached"
    )
    with pytest.raises(UserError, match="not finite"):
        op.matvec(_random_vector(op.dim))


def test_the_non_finite_error_speaks_in_library_terms_not_in_command_line_flags():
    model = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
    op = HessianOperator(model, torch.nn.functional.cross_entropy, x, y, batch_size=4)
    with pytest.raises(UserError, match="compute in float64") as caught:
        op.matvec(_random_vector(op.dim))
    assert "--" not in str(caught.value)


def test_the_operator_names_its_parameters_parameter_names_in_flat_order():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    op = HessianOperator(model, torch.nn.functional.cross_entropy, x, y, batch_size=4)
    assert op.parameter_names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert not hasattr(op, "params")  # engines' params are tensors; names are not params


@pytest.mark.parametrize("budget", [None, 0])
@pytest.mark.parametrize("name", list(MODELS))
def test_batched_products_equal_the_exact_hessian_times_each_vector(name, budget):
    model, x, y, H = reference(name)
    op = HessianOperator(
        model, loss_fn, x, y, batch_size=7, engine="cached", memory_budget=budget, weight_decay=0.1
    )
    V = torch.randn(3, op.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    expected = V @ (H + 0.1 * torch.eye(op.dim, dtype=torch.float64))
    assert torch.allclose(op.matmat(V), expected, rtol=0, atol=1e-12 * H.abs().max())
    assert op.hvp_count == 3 and op._batched


def test_batched_products_fall_back_to_one_at_a_time_where_an_operation_refuses(monkeypatch):
    from landscape.curvature.hvp import CachedGraphEngine

    def products(self, index, v_parts):
        raise RuntimeError("Batching rule not implemented for aten::something")

    monkeypatch.setattr(CachedGraphEngine, "products", products)
    model, x, y, H = reference("mlp")
    op = HessianOperator(model, loss_fn, x, y)
    V = torch.randn(2, op.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.allclose(op.matmat(V), V @ H, rtol=0, atol=1e-12 * H.abs().max())
    assert not op._batched and op.hvp_count == 2


def test_batched_products_that_run_out_of_memory_say_so_and_go_one_at_a_time(monkeypatch, caplog):
    from landscape.curvature.hvp import CachedGraphEngine

    def products(self, index, v_parts):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(CachedGraphEngine, "products", products)
    model, x, y, H = reference("mlp")
    op = HessianOperator(model, loss_fn, x, y)
    V = torch.randn(2, op.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with caplog.at_level("INFO", logger="landscape"):
        assert torch.allclose(op.matmat(V), V @ H, rtol=0, atol=1e-12 * H.abs().max())
    assert "batched products of 2 vectors ran out of memory on cpu" in caplog.text
    assert not op._batched and op.hvp_count == 2


def test_a_batched_product_that_fails_for_another_reason_is_not_hidden(monkeypatch):
    from landscape.curvature.hvp import CachedGraphEngine

    def products(self, index, v_parts):
        raise RuntimeError("expected scalar type Float but found Double")

    monkeypatch.setattr(CachedGraphEngine, "products", products)
    model, x, y, _ = reference("mlp")
    op = HessianOperator(model, loss_fn, x, y)
    V = torch.randn(2, op.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with pytest.raises(RuntimeError, match="expected scalar type"):
        op.matmat(V)
