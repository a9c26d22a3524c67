"""Specification of the model registry (landscape.models.build_model / model_names)."""

from __future__ import annotations

import pytest
import torch

from landscape.errors import UserError
from landscape.models import build_model, canonical_name, model_names

PAPER_MODELS = ["resnet20", "resnet32", "resnet56", "vgg11-bn", "vgg16-bn", "wrn16-8", "wrn28-10"]
SMALL_MODELS = ["mlp", "mlp-bn", "cnn", "cnn-bn"]
SEQUENCE_MODELS = ["cnn1d", "cnn1d-bn"]


def test_registry_holds_the_planned_names():
    assert model_names() == SMALL_MODELS + SEQUENCE_MODELS + PAPER_MODELS


@pytest.mark.parametrize("name", SEQUENCE_MODELS + ["mlp"])
def test_sequence_models_fit_mnist1d_and_train_a_step(name):
    torch.manual_seed(0)
    model = build_model(name, (1, 40), 10)
    x, y = torch.randn(32, 1, 40), torch.randint(0, 10, (32,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert model(x).shape == (32, 10) and all(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_sequence_models_refuse_images(name):
    with pytest.raises(UserError, match="sequence inputs"):
        build_model(name, (1, 8, 8), 10)


def test_unknown_name_lists_the_names():
    with pytest.raises(UserError) as info:
        build_model("resnet18", (3, 32, 32), 10)
    assert all(name in str(info.value) for name in model_names())


@pytest.mark.parametrize("spelling", ["VGG16_BN", "vgg16_bn", " Vgg16-BN "])
def test_names_are_case_and_separator_insensitive(spelling):
    assert canonical_name(spelling) == "vgg16-bn"


@pytest.mark.parametrize("name", SMALL_MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_small_models_fit_digits_and_cifar(name, shape):
    model = build_model(name, shape, 7)
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_small_models_train_a_step(name):
    """A gradient step lowers the loss: parameters are wired to the output."""
    torch.manual_seed(0)
    model = build_model(name, (1, 8, 8), 10)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        assert all(g.abs().sum() > 0 for g in grads)
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= 0.05 * g
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "name,has_bn", [("mlp", False), ("mlp-bn", True), ("cnn", False), ("cnn-bn", True)]
)
def test_bn_variants_differ_only_by_batchnorm(name, has_bn):
    model = build_model(name, (1, 8, 8), 10)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bool(bn) == has_bn


def test_small_model_options():
    mlp = build_model("mlp", (1, 8, 8), 10, hidden=[32])
    assert [m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)] == [32, 10]
    cnn = build_model("cnn", (1, 8, 8), 10, width=8)
    assert cnn.classifier.in_features == 16


def test_unknown_option_is_a_user_error_naming_the_options():
    with pytest.raises(UserError, match="resnet20 does not take depth; it takes shortcut, width"):
        build_model("resnet20", (3, 32, 32), 10, depth=44)


def test_image_models_need_image_shapes():
    with pytest.raises(UserError, match="needs image inputs"):
        build_model("cnn", (64,), 10)
    assert build_model("mlp", (64,), 10)(torch.randn(2, 64)).shape == (2, 10)


def test_builds_are_seeded_by_torch_rng():
    torch.manual_seed(1)
    a = build_model("cnn-bn", (1, 8, 8), 10).state_dict()
    torch.manual_seed(1)
    b = build_model("cnn-bn", (1, 8, 8), 10).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
