"""Wide ResNets (Zagoruyko & Komodakis 2016): WRN-d-k with pre-activation basic blocks.

conv3x3(16) -> 3 stages of n = (d - 4) / 6 blocks with 16k, 32k, 64k channels (strides 1, 2, 2)
-> BN -> ReLU -> global average pool -> linear. Each block is BN -> ReLU -> conv3x3 -> BN -> ReLU
-> dropout -> conv3x3, added to the input; where the shape changes the shortcut is a 1x1 conv of
the pre-activated input, as in the authors' code. WRN-16-8: 11.0M parameters, WRN-28-10: 36.5M.
Module names (``conv1``, ``block1.layer.0.bn1``, ``convShortcut``, ``bn1``, ``fc``) follow the
widely used PyTorch port so its checkpoints load.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from landscape.errors import UserError
from landscape.models.initialization import kaiming_init


class PreActBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.equal_in_out = in_channels == out_channels and stride == 1
        self.convShortcut = (  # noqa: N815 - name kept for checkpoint compatibility
            None
            if self.equal_in_out
            else nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv1(act)
        out = F.relu(self.bn2(out))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        return out + shortcut


class NetworkBlock(nn.Module):
    """One stage: ``n`` pre-activation blocks, the first one changing width/resolution."""

    def __init__(self, n: int, in_channels: int, out_channels: int, stride: int, dropout: float):
        super().__init__()
        self.layer = nn.Sequential(
            *[
                PreActBlock(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    stride if i == 0 else 1,
                    dropout,
                )
                for i in range(n)
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int,
        widen_factor: int,
        input_shape: tuple[int, ...],
        num_classes: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise UserError(f"WideResNet depth must be 6n + 4 (16, 22, 28, ...), got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"WideResNet dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, dropout)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, dropout)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, dropout)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
