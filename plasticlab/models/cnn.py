"""``cnn``: a small configurable conv net, and ``ConvNet``, the plain conv stack VGG reuses.

Architecture (input (B, C, H, W))::

    for c in channels:  Conv3×3(pad 1) → norm → activation → [2×2 pool]
    AdaptiveAvgPool(spatial × spatial) → flatten (C_last·spatial²)
    for h in hidden:    Linear → norm → activation
    Linear head → (B, n_out)

Each 2×2 pool is skipped once H or W is below 2, and the adaptive pool fixes the flattened size,
so one model accepts 8×8, 28×28 and 32×32 inputs (and transfers between them). Init: PyTorch
defaults (``models/layers.py``). Unit map: every conv channel and every hidden neuron is a unit.
With ``activation: crelu`` a layer of c units outputs 2c channels/features (widths are not halved).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.models.layers import (
    ConvNorm,
    HalvingPool,
    check_groups,
    conv_norm,
    conv_slices,
    flat_norm,
    image_shape,
    linear_column_slices,
    out_width,
    read_by,
    unit_activation,
)
from plasticlab.models.mlp import ACTIVATIONS, Activation
from plasticlab.units import Slice, UnitLayer, linear_slices, norm_slices


@registry.register(registry.MODELS, "cnn")
@dataclass
class CNNSpec:
    """Config of the ``cnn`` model."""

    name: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [32, 64, 128], metadata=bounds(ge=1, min_length=1))
    """Output channels of the 3×3 conv layers, in order."""
    pool: Literal["max", "avg", "none"] = "max"
    """2×2 stride-2 pooling after every conv layer (skipped once the map is below 2×2)."""
    norm: ConvNorm = "none"
    """Per-layer norm: none, batchnorm, groupnorm (``groups`` groups) or layernorm
    (GroupNorm with 1 group on conv maps, LayerNorm on hidden Linear layers)."""
    groups: int = field(default=8, metadata=bounds(ge=1))
    """Groups of ``groupnorm``; must divide every width."""
    activation: Activation = "relu"
    """``crelu``: [relu(x), relu(−x)] — each channel/unit gives two, the next layer's fan-in doubles."""
    spatial: int = field(default=1, metadata=bounds(ge=1))
    """Side s of the adaptive average pool before flattening (features C_last·s²)."""
    hidden: list[int] = field(default_factory=list, metadata=bounds(ge=1))
    """Widths of fully connected hidden layers between the conv stack and the head."""

    def validate(self, key: str) -> None:
        check_groups(key, self.norm, self.groups, self.channels + self.hidden)

    def build(self, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
        c, _, _ = image_shape("cnn", input_shape)
        return ConvNet(c, self.channels, n_out, pool_after=[self.pool != "none"] * len(self.channels),
                       pool=self.pool if self.pool != "none" else "max", norm=self.norm, groups=self.groups,
                       activation=self.activation, spatial=self.spatial, hidden=self.hidden)


class ConvNet(nn.Module):
    """Plain conv stack → adaptive pool → optional hidden Linears → Linear head.

    Args:
        in_channels: C of the input images.
        channels: output channels of each 3×3 conv (padding 1, with bias).
        n_out: outputs of the head.
        pool_after: whether a 2×2 pool follows conv i.
        pool: ``max`` or ``avg``.
        norm, groups, activation: per-layer norm, GroupNorm groups, activation name.
        spatial: side of the adaptive average pool before flattening.
        hidden: widths of hidden Linear layers after flattening.
    """

    def __init__(self, in_channels: int, channels: list[int], n_out: int, *, pool_after: list[bool],
                 pool: Literal["max", "avg"] = "max", norm: str = "none", groups: int = 8,
                 activation: str = "relu", spatial: int = 1, hidden: list[int] | None = None):
        super().__init__()
        self.convs, self.norms, self.acts, self.pools = (nn.ModuleList() for _ in range(4))
        width = in_channels
        for c, p in zip(channels, pool_after, strict=True):
            self.convs.append(nn.Conv2d(width, c, 3, padding=1))
            self.norms.append(conv_norm(norm, c, groups))
            self.acts.append(ACTIVATIONS[activation]())
            self.pools.append(HalvingPool(pool) if p else nn.Identity())
            width = c * out_width(self.acts[-1])
        self.spatial = spatial
        self.avgpool = nn.AdaptiveAvgPool2d(spatial)
        self.linears, self.lin_norms, self.lin_acts = (nn.ModuleList() for _ in range(3))
        width = width * spatial * spatial
        for h in hidden or []:
            self.linears.append(nn.Linear(width, h))
            self.lin_norms.append(flat_norm(norm, h, groups))
            self.lin_acts.append(ACTIVATIONS[activation]())
            width = h * out_width(self.lin_acts[-1])
        self.head = nn.Linear(width, n_out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D): D = hidden[-1], or C_last·spatial² without hidden layers (×2 with CReLU)."""
        h = x
        for conv, norm, act, pool in zip(self.convs, self.norms, self.acts, self.pools, strict=True):
            h = pool(act(norm(conv(h))))
        h = self.avgpool(h).flatten(1)  # (B, C·s·s)
        for lin, norm, act in zip(self.linears, self.lin_norms, self.lin_acts, strict=True):
            h = act(norm(lin(h)))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def unit_layers(self) -> list[UnitLayer]:
        """Conv layer i: units = its output channels; incoming = kernel[c] + bias + norm entries;
        outgoing = next conv's kernel[:, c], or the columns of the first Linear reading the
        flattened map (``group = spatial²``). Hidden Linear layers as in the MLP. With CReLU the
        outgoing slices have ``blocks=2`` and the activation is the CReLU's input (``unit_activation``)."""
        layers = []
        first_lin = self.linears[0] if len(self.linears) else self.head
        for i, (conv, norm, act) in enumerate(zip(self.convs, self.norms, self.acts, strict=True)):
            if i + 1 < len(self.convs):
                outgoing = conv_slices(self.convs[i + 1], 1)
            else:
                outgoing = linear_column_slices(first_lin, group=self.spatial**2)
            incoming: list[Slice] = conv_slices(conv, 0) + norm_slices(norm)
            layers.append(UnitLayer(f"conv{i}", conv.out_channels, incoming, read_by(act, outgoing),
                                    unit_activation(act)))
        nxt = [*self.linears[1:], self.head]
        for i, (lin, norm, act) in enumerate(zip(self.linears, self.lin_norms, self.lin_acts, strict=True)):
            incoming = linear_slices(lin, 0) + norm_slices(norm)
            layers.append(UnitLayer(f"hidden{i}", lin.out_features, incoming, read_by(act, linear_slices(nxt[i], 1)),
                                    unit_activation(act)))
        return layers

    def head_slices(self) -> list[Slice]:
        """The output layer's parameters with their init (for head-reset)."""
        return linear_slices(self.head, 0)
