"""CIFAR ResNets (He et al. 2016, "Deep Residual Learning", Sec. 4.2): depth 6n + 2.

conv3x3(16) -> 3 stages of n basic blocks with 16, 32, 64 channels (the first block of stages 2
and 3 halves the resolution) -> global average pool -> linear. ResNet-20/32/56: n = 3/5/9,
0.27M/0.46M/0.85M parameters.

Shortcuts default to the paper's option A: identity, with stride-2 subsampling and zero-padded
extra channels where the shape changes (no parameters). Option B (``shortcut="B"``) uses a 1x1
convolution + BN there instead. Parameter names follow the common CIFAR-ResNet layout
(``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``linear``) so such third-party checkpoints load.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from landscape.errors import UserError
from landscape.models.initialization import kaiming_init


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # Split the new zero channels evenly before and after the existing ones.
        before = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra - before))


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus shortcut, then ReLU (post-activation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images; ``width`` scales the 16/32/64 stage widths."""

    def __init__(
        self,
        depth: int,
        input_shape: tuple[int, ...],
        num_classes: int,
        shortcut: str = "A",
        width: int = 16,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise UserError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 56, ...), got {depth}")
        shortcut = shortcut.upper()
        if shortcut not in ("A", "B"):
            raise UserError(
                f"ResNet shortcut must be 'A' (zero-pad) or 'B' (1x1 conv), got {shortcut!r}"
            )
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, channels = [], width
        for i, stride in enumerate((1, 2, 2)):
            out = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(channels, out, stride if j == 0 else 1, shortcut))
                channels = out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(channels, num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)
