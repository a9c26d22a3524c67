"""Models sized for the CPU datasets (digits 8x8, MNIST-1D 1x40): an MLP, a small 2-D CNN and a
small 1-D CNN, each with or without BatchNorm."""

from __future__ import annotations

import math

from torch import Tensor, nn

from landscape.models.initialization import kaiming_init


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm1d) -> ReLU] per hidden width -> Linear."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        hidden: tuple[int, ...] = (64, 64),
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU())
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class SmallCNN(nn.Module):
    """conv3x3 -> (BN) -> ReLU -> max-pool 2 -> conv3x3 -> (BN) -> ReLU -> global avg pool
    -> Linear.

    Global average pooling makes it work on any input of at least 2x2 (8x8 digits, 32x32 CIFAR).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 16,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        channels = input_shape[0]

        def block(cin: int, cout: int) -> list[nn.Module]:
            conv = nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)
            return [conv, nn.BatchNorm2d(cout), nn.ReLU()] if batch_norm else [conv, nn.ReLU()]

        self.features = nn.Sequential(
            *block(channels, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class SmallCNN1d(nn.Module):
    """Three conv1d (kernel 5, stride 2) -> (BN) -> ReLU layers, flatten, Linear.

    The convolutional model of the MNIST-1D paper (Greydanus 2020: 3 layers of 25 channels,
    kernel 5, stride 2), here ``width`` channels. Inputs are (C, L) sequences.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 32,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        channels, length = input_shape
        layers: list[nn.Module] = []
        for cin in (channels, width, width):
            layers.append(nn.Conv1d(cin, width, 5, stride=2, padding=2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            length = (length - 1) // 2 + 1  # (L + 2*2 - 5) // 2 + 1
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Linear(width * length, num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
