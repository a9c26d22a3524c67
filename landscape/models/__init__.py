"""Model registry: ``build_model(name, input_shape, num_classes, **kwargs)``.

Names and what they build:

- ``mlp``, ``mlp-bn``: 2 hidden layers of 64 (``hidden=(..)``), without / with BatchNorm.
- ``cnn``, ``cnn-bn``: two 3x3 conv layers (16, 32 channels; ``width=``), global average pool.
- ``cnn1d``, ``cnn1d-bn``: three 1-D conv layers (kernel 5, stride 2, 32 channels; ``width=``) for
  sequences (C, L) such as MNIST-1D (the paper's CNN, Greydanus 2020).
- ``resnet20``, ``resnet32``, ``resnet56``: CIFAR ResNets of He et al. 2016 (option-A shortcuts;
  ``shortcut="B"`` for 1x1-conv projections).
- ``vgg11-bn``, ``vgg16-bn``: CIFAR VGG with BatchNorm and one linear classifier (inputs >= 32x32).
- ``wrn16-8``, ``wrn28-10``: Wide ResNets of Zagoruyko & Komodakis 2016 (``dropout=0.0``).

Every model takes its input shape ``(C, H, W)`` and class count from the dataset, adapts to other
image sizes through global average pooling, and is initialised with Kaiming-normal weights.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from landscape.errors import UserError
from landscape.models.resnet import CifarResNet
from landscape.models.small import MLP, SmallCNN, SmallCNN1d
from landscape.models.vgg import VGG
from landscape.models.wide_resnet import WideResNet

__all__ = ["build_model", "model_names", "canonical_name"]


def _mlp(input_shape, num_classes, hidden: tuple[int, ...] = (64, 64)):
    return MLP(input_shape, num_classes, tuple(hidden), batch_norm=False)


def _mlp_bn(input_shape, num_classes, hidden: tuple[int, ...] = (64, 64)):
    return MLP(input_shape, num_classes, tuple(hidden), batch_norm=True)


def _cnn(input_shape, num_classes, width: int = 16):
    return SmallCNN(input_shape, num_classes, width, batch_norm=False)


def _cnn_bn(input_shape, num_classes, width: int = 16):
    return SmallCNN(input_shape, num_classes, width, batch_norm=True)


def _sequence_input(input_shape) -> None:
    if len(input_shape) != 2:
        raise UserError(f"cnn1d needs sequence inputs (C, L), got input shape {tuple(input_shape)}")


def _cnn1d(input_shape, num_classes, width: int = 32):
    _sequence_input(input_shape)
    return SmallCNN1d(input_shape, num_classes, width, batch_norm=False)


def _cnn1d_bn(input_shape, num_classes, width: int = 32):
    _sequence_input(input_shape)
    return SmallCNN1d(input_shape, num_classes, width, batch_norm=True)


def _resnet(depth: int) -> Callable[..., nn.Module]:
    def build(input_shape, num_classes, shortcut: str = "A", width: int = 16):
        return CifarResNet(depth, input_shape, num_classes, shortcut=shortcut, width=width)

    return build


def _vgg(depth: int) -> Callable[..., nn.Module]:
    def build(input_shape, num_classes):
        return VGG(depth, input_shape, num_classes)

    return build


def _wrn(depth: int, widen_factor: int) -> Callable[..., nn.Module]:
    def build(input_shape, num_classes, dropout: float = 0.0):
        return WideResNet(depth, widen_factor, input_shape, num_classes, dropout=dropout)

    return build


# name -> (builder, needs an image input (C, H, W))
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], bool]] = {
    "mlp": (_mlp, False),
    "mlp-bn": (_mlp_bn, False),
    "cnn": (_cnn, True),
    "cnn-bn": (_cnn_bn, True),
    "cnn1d": (_cnn1d, False),
    "cnn1d-bn": (_cnn1d_bn, False),
    "resnet20": (_resnet(20), True),
    "resnet32": (_resnet(32), True),
    "resnet56": (_resnet(56), True),
    "vgg11-bn": (_vgg(11), True),
    "vgg16-bn": (_vgg(16), True),
    "wrn16-8": (_wrn(16, 8), True),
    "wrn28-10": (_wrn(28, 10), True),
}


def model_names() -> list[str]:
    """The registered architecture names, in registry order (small models first)."""
    return list(_REGISTRY)


def canonical_name(name: str) -> str:
    """Registry spelling of ``name`` (case and ``_``/``-`` insensitive: ``VGG16_BN`` ->
    ``vgg16-bn``)."""
    key = name.strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise UserError(f"unknown architecture {name!r}: use one of {', '.join(_REGISTRY)}")
    return key


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> nn.Module:
    """A freshly initialised model ``name`` for inputs of ``input_shape`` and ``num_classes``."""
    key = canonical_name(name)
    builder, needs_image = _REGISTRY[key]
    input_shape = tuple(int(d) for d in input_shape)
    if needs_image and len(input_shape) != 3:
        raise UserError(f"{key} needs image inputs (C, H, W), got input shape {input_shape}")
    if num_classes < 1 or any(d < 1 for d in input_shape):
        raise UserError(f"{key}: bad input shape {input_shape} or class count {num_classes}")
    options = [
        p for p in inspect.signature(builder).parameters if p not in ("input_shape", "num_classes")
    ]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        takes = ", ".join(options) if options else "no options"
        raise UserError(f"{key} does not take {', '.join(unknown)}; it takes {takes}")
    return builder(input_shape, num_classes, **kwargs)
