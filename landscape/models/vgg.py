"""VGG with BatchNorm for CIFAR (Simonyan & Zisserman 2015, configurations A = 11 and D = 16).

The CIFAR variant used in sharpness papers: the conv stack (3x3 conv -> BN -> ReLU, five 2x2
max-pools) followed by a single linear classifier on the 512 features (no 4096-wide FC layers,
no dropout). VGG-11-BN: 9.2M parameters, VGG-16-BN: 14.7M on CIFAR-10. Module names
(``features.<i>``, ``classifier``) follow the common CIFAR VGG layout.
"""

from __future__ import annotations

from torch import Tensor, nn

from landscape.errors import UserError
from landscape.models.initialization import kaiming_init

CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
MIN_SIZE = 32  # five max-pools halve the input five times


class VGG(nn.Module):
    def __init__(self, depth: int, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        if min(height, width) < MIN_SIZE:
            raise UserError(
                f"vgg{depth}-bn needs inputs of at least {MIN_SIZE}x{MIN_SIZE} (its five max-pools "
                f"halve the image five times), got {height}x{width}; "
                "use resnet20 or cnn for small images"
            )
        layers: list[nn.Module] = []
        for v in CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                channels = v
        self.features = nn.Sequential(*layers)
        # Identity on 32x32 inputs; lets larger images reach the same 512 features.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))
