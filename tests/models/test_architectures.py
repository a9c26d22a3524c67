"""The paper's architectures: sizes against the literature, shapes, shortcuts, input limits."""

from __future__ import annotations

import pytest
import torch

from landscape.errors import UserError
from landscape.models import build_model


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Published sizes on CIFAR-10: He et al. 2016 Table 6 (0.27M, 0.46M, 0.85M, option A);
# Zagoruyko & Komodakis 2016 Table 1 (11.0M, 36.5M); VGG-BN CIFAR variant with one linear layer.
@pytest.mark.parametrize(
    "name,millions,tolerance",
    [
        ("resnet20", 0.27, 0.005),
        ("resnet32", 0.46, 0.005),
        ("resnet56", 0.85, 0.005),
        ("vgg11-bn", 9.23, 0.01),
        ("vgg16-bn", 14.73, 0.01),
        ("wrn16-8", 11.0, 0.05),
        ("wrn28-10", 36.5, 0.05),
    ],
)
def test_parameter_counts_match_the_literature(name, millions, tolerance):
    assert count(build_model(name, (3, 32, 32), 10)) / 1e6 == pytest.approx(millions, abs=tolerance)


def test_resnet20_exact_parameter_count():
    # 16*27 + 3 stages of BN-conv pairs + 64*10 + 10; option-A shortcuts add nothing.
    assert count(build_model("resnet20", (3, 32, 32), 10)) == 269_722


@pytest.mark.parametrize(
    "name,shape",
    [
        ("resnet20", (3, 32, 32)),
        ("resnet32", (3, 16, 16)),
        ("resnet56", (3, 8, 8)),
        ("vgg11-bn", (3, 32, 32)),
        ("vgg16-bn", (3, 32, 32)),
        ("vgg16-bn", (1, 48, 40)),
        ("wrn16-8", (3, 32, 32)),
        ("wrn28-10", (3, 8, 8)),  # the big one on a small input keeps this cheap
        ("resnet20", (1, 8, 8)),
    ],
)
def test_forward_shape(name, shape):
    model = build_model(name, shape, 100)
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 100) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["vgg11-bn", "vgg16-bn"])
def test_vgg_refuses_inputs_smaller_than_32(name):
    with pytest.raises(UserError, match="at least 32x32"):
        build_model(name, (1, 8, 8), 10)


def test_resnet_option_b_adds_projection_shortcuts():
    a = build_model("resnet20", (3, 32, 32), 10)
    b = build_model("resnet20", (3, 32, 32), 10, shortcut="B")
    # Two projections (stage 2 and 3 entries): 1x1 conv + BN each.
    assert count(b) - count(a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert b(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_option_a_shortcut_is_subsampled_zero_padded_identity():
    block = build_model("resnet20", (3, 32, 32), 10).layer2[0]
    x = torch.randn(2, 16, 8, 8)
    short = block.shortcut(x)
    assert short.shape == (2, 32, 4, 4)
    assert torch.equal(short[:, 8:24], x[:, :, ::2, ::2])
    assert short[:, :8].abs().sum() == 0 and short[:, 24:].abs().sum() == 0


def test_resnet_state_dict_uses_the_common_cifar_layout():
    keys = build_model("resnet20", (3, 32, 32), 10).state_dict().keys()
    assert {"conv1.weight", "bn1.running_mean", "layer3.2.conv2.weight", "linear.weight"} <= set(
        keys
    )


def test_wrn_blocks_are_pre_activation_with_projection_where_shapes_change():
    model = build_model("wrn16-8", (3, 32, 32), 10)
    first = model.block1.layer[0]
    assert first.convShortcut is not None  # 16 -> 128 channels
    assert model.block1.layer[1].convShortcut is None
    assert isinstance(model.bn1, torch.nn.BatchNorm2d)  # final BN-ReLU before pooling
    assert first.bn1.num_features == 16  # BN comes before the first conv


def test_wrn_dropout_is_off_by_default_and_only_in_training():
    x = torch.randn(2, 3, 8, 8)
    plain = build_model("wrn16-8", (3, 8, 8), 10).eval()
    torch.manual_seed(0)
    dropped = build_model("wrn16-8", (3, 8, 8), 10, dropout=0.3)
    dropped.load_state_dict(plain.state_dict())
    dropped.eval()
    assert torch.allclose(plain(x), dropped(x))
    dropped.train()
    plain.train()
    assert not torch.allclose(plain(x), dropped(x))


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("resnet20", {"shortcut": "C"}, "shortcut"),
        ("wrn16-8", {"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_architecture_options_are_user_errors(name, kwargs, match):
    with pytest.raises(UserError, match=match):
        build_model(name, (3, 32, 32), 10, **kwargs)


def test_kaiming_init_of_convolutions():
    conv = build_model("vgg16-bn", (3, 32, 32), 10).features[3]  # 64 -> 64, 3x3
    expected_std = (2 / (64 * 9)) ** 0.5  # fan-out mode
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
