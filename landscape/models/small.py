"""Models sized for the CPU default (digits, 8x8): an MLP and a small CNN, with or without BN."""

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
    """conv3x3 -> (BN) -> ReLU -> max-pool 2 -> conv3x3 -> (BN) -> ReLU -> global avg pool -> Linear.

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
