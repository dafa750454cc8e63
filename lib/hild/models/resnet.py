"""ResNet-18 for 32x32 images (CIFAR), the network of the full-scale runs of the data chapters.

The CIFAR variant of He et al. (CVPR 2016) as used by the Cutout, CutMix, DASH and DUAL papers'
code: a 3x3 stem convolution without max-pooling, four stages of two basic blocks with 64, 128,
256 and 512 channels (the last three downsample by two), global average pooling and a linear
classifier. ``width`` scales every stage's channels (``width=0.25`` for quick CPU checks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "ResNet18"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a (projected, when the shape changes) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """(B, in_channels, 32, 32) images → (B, num_classes) logits.

    Args:
        num_classes: output classes (10 for CIFAR-10).
        in_channels: input channels (3 for colour images).
        width: multiplier of the channel counts 64, 128, 256, 512.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        if num_classes < 1 or width <= 0:
            raise ValueError(f"need num_classes ≥ 1 and width > 0, got {num_classes} and {width}")
        c = [max(1, int(round(k * width))) for k in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False), nn.BatchNorm2d(c[0]),
                                  nn.ReLU())
        blocks = []
        c_in = c[0]
        for i, c_out in enumerate(c):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
