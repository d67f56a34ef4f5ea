"""``vgg``: VGG-11/13/16/19 for 32×32 images, as in the common CIFAR definition.

Definition (Simonyan & Zisserman 2015, configurations A/B/D/E, adapted to CIFAR as in
kuangliu/pytorch-cifar ``models/vgg.py``): 3×3 convs (padding 1, with bias) → [BatchNorm] →
ReLU, a 2×2 max-pool after each of the five stages, then one Linear 512 → n_out. On 32×32
inputs the five pools leave a 1×1 map, so the adaptive pool before the head is the identity and
the parameter count is the standard one (VGG-16 with BatchNorm, 10 classes: 14,728,266).
Smaller inputs skip the pools that would go below 1×1. The classifier is the single Linear of
the CIFAR definition, not ImageNet VGG's 3-layer 4096-wide one (which expects a 7×7 map).
Init: PyTorch defaults. Unit map: every conv channel is a unit (``ConvNet.unit_layers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from plasticlab import registry
from plasticlab.models.cnn import ConvNet
from plasticlab.models.layers import image_shape

STAGES: dict[int, list[list[int]]] = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}
"""Conv widths per stage; a 2×2 max-pool ends every stage."""


@registry.register(registry.MODELS, "vgg")
@dataclass
class VGGSpec:
    """Config of the ``vgg`` model."""

    name: str = "vgg"
    depth: Literal[11, 13, 16, 19] = 16
    """Weight layers: 11 (A), 13 (B), 16 (D) or 19 (E)."""
    batchnorm: bool = True
    """BatchNorm after every conv (the usual CIFAR variant)."""

    def build(self, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
        c, _, _ = image_shape("vgg", input_shape)
        channels = [w for stage in STAGES[self.depth] for w in stage]
        pool_after = [i == len(stage) - 1 for stage in STAGES[self.depth] for i in range(len(stage))]
        return ConvNet(c, channels, n_out, pool_after=pool_after, pool="max",
                       norm="batchnorm" if self.batchnorm else "none", activation="relu")
