"""``resnet18``: ResNet-18 with the CIFAR stem (He et al. 2016; kuangliu/pytorch-cifar).

Definition (input (B, C, H, W), w = ``width``)::

    stem:   Conv3×3(C→w, stride 1, no bias) → norm → ReLU          (no max-pool)
    stages: BasicBlocks [2, 2, 2, 2] of widths w, 2w, 4w, 8w; the first block of stages 2–4
            has stride 2 and a 1×1-conv (no bias) + norm shortcut
    block:  y = ReLU(norm2(conv2(ReLU(norm1(conv1(x))))) + shortcut(x)), convs 3×3 without bias
    head:   global average pool → Linear(8w → n_out)

With w = 64, BatchNorm and 10 classes it has 11,173,962 parameters. GroupNorm keeps the count
(per-channel gain and bias) and has no running statistics. Init: PyTorch defaults for every conv
and the Linear (U(±1/√fan_in), ``models/layers.py``), norm gain 1, bias 0 — the kuangliu
definition; torchvision's kaiming-normal(fan_out) init is not used.

Unit map: in every BasicBlock the w_s channels between conv1 and conv2 are one unit layer
(incoming: conv1 kernel[c] + norm1 entries; outgoing: conv2 kernel[:, c]). The residual stream
(the stem's output and every block's output) is not a unit layer: each stream channel is a sum
of several writers (the stem or a shortcut plus the norm2 output of every later block in the
stage) and is read by every later block, its shortcut and the head, so it has no single set of
incoming weights whose reset re-initialises "the unit", and a mutually frozen stream channel
would need all writers frozen at once. The stem conv is excluded for the same reason: its
channels are the first stage's residual stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.models.layers import check_groups, conv_norm, conv_slices, image_shape
from plasticlab.units import Slice, UnitLayer, linear_slices, norm_slices


@registry.register(registry.MODELS, "resnet18")
@dataclass
class ResNet18Spec:
    """Config of the ``resnet18`` model."""

    name: str = "resnet18"
    norm: Literal["batchnorm", "groupnorm"] = "batchnorm"
    groups: int = field(default=32, metadata=bounds(ge=1))
    """Groups of ``groupnorm``; must divide every width (w, 2w, 4w, 8w)."""
    width: int = field(default=64, metadata=bounds(ge=1))
    """w: channels of the stem and first stage (stages have w, 2w, 4w, 8w). 64 = standard."""

    def validate(self, key: str) -> None:
        check_groups(key, self.norm, self.groups, [self.width * m for m in (1, 2, 4, 8)])

    def build(self, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
        c, _, _ = image_shape("resnet18", input_shape)
        return ResNet(c, n_out, blocks=(2, 2, 2, 2), width=self.width, norm=self.norm, groups=self.groups)


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (projection shortcut when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = conv_norm(norm, c_out, groups)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = conv_norm(norm, c_out, groups)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          conv_norm(norm, c_out, groups))
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet of BasicBlocks; ``blocks=(2, 2, 2, 2)`` is ResNet-18."""

    def __init__(self, in_channels: int, n_out: int, *, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 width: int = 64, norm: str = "batchnorm", groups: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.norm1 = conv_norm(norm, width, groups)
        self.act1 = nn.ReLU()
        self.blocks = nn.ModuleList()
        c_in = width
        for stage, n in enumerate(blocks):
            c_out = width * 2**stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                self.blocks.append(BasicBlock(c_in, c_out, stride, norm, groups))
                c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, n_out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 8w): the global average of the last stage."""
        h = self.act1(self.norm1(self.conv1(x)))
        for block in self.blocks:
            h = block(h)
        return self.avgpool(h).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def unit_layers(self) -> list[UnitLayer]:
        """One layer per BasicBlock: the channels between conv1 and conv2 (see module docstring)."""
        layers = []
        for i, b in enumerate(self.blocks):
            incoming: list[Slice] = conv_slices(b.conv1, 0) + norm_slices(b.norm1)
            outgoing = conv_slices(b.conv2, 1)
            layers.append(UnitLayer(f"block{i}", b.conv1.out_channels, incoming, outgoing, b.act1))
        return layers

    def head_slices(self) -> list[Slice]:
        """The output layer's parameters with their init (for head-reset)."""
        return linear_slices(self.head, 0)
