"""Building blocks shared by the conv models: norms, a size-safe 2×2 pool, and unit-map slices.

Init conventions (PyTorch defaults, which every plasticlab conv model keeps): ``nn.Conv2d`` and
``nn.Linear`` draw weights with ``kaiming_uniform_(a=√5)``, i.e. U(±gain·√3/√fan_in) with
gain = √(2/(1+5)), which is exactly U(±1/√fan_in); biases are U(±1/√fan_in). fan_in of a conv
is in_channels/groups · kh · kw. Norm gains start at 1, biases and running means at 0,
running variances at 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from plasticlab.registry import UserError
from plasticlab.units import Slice, default_init_slices

ConvNorm = Literal["none", "batchnorm", "groupnorm", "layernorm"]


def conv_norm(kind: str, channels: int, groups: int = 32) -> nn.Module:
    """Norm layer for conv features (B, C, H, W).

    ``layernorm`` is GroupNorm with one group: statistics over (C, H, W) of each example,
    gain and bias per channel (the usual "LayerNorm" of conv nets).
    """
    if kind == "none":
        return nn.Identity()
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "groupnorm":
        return nn.GroupNorm(groups, channels)
    if kind == "layernorm":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"unknown norm {kind!r}")


def flat_norm(kind: str, features: int, groups: int = 32) -> nn.Module:
    """Norm layer for flat features (B, D): the (B, D) counterpart of ``conv_norm``."""
    if kind == "none":
        return nn.Identity()
    if kind == "batchnorm":
        return nn.BatchNorm1d(features)
    if kind == "groupnorm":
        return nn.GroupNorm(groups, features)
    if kind == "layernorm":
        return nn.LayerNorm(features)
    raise ValueError(f"unknown norm {kind!r}")


class HalvingPool(nn.Module):
    """2×2 stride-2 max or average pool, skipped when H or W is already below 2.

    # why: lets one architecture take 8×8, 28×28 and 32×32 inputs; on 32×32 inputs every pool
    of VGG and of the default ``cnn`` applies, so the standard definitions are unchanged.
    The choice depends on the static input shape only (no host sync).
    """

    def __init__(self, kind: Literal["max", "avg"] = "max"):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 2:
            return x
        return F.max_pool2d(x, 2) if self.kind == "max" else F.avg_pool2d(x, 2)

    def extra_repr(self) -> str:
        return self.kind


class CReLU(nn.Module):
    """Concatenated ReLU (Shang et al. 2016; Abbas et al. 2023): x ↦ [relu(x), relu(−x)] along dim 1.

    The output has twice the units of the input: unit i is read at i and i + units. ``units`` is an
    identity on the input, the module the unit map names as the units' activation: |x| = relu(x) +
    relu(−x) is the sum of a unit's two outputs, so dormancy (mean |activation|) and ReDo's score see
    a unit as dormant only when both halves are. # why: the output (B, 2·units) has no per-unit axis.
    """

    width = 2
    """Output units per input unit."""

    def __init__(self):
        super().__init__()
        self.units = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.units(x)
        return torch.cat([x, -x], dim=1).relu()


def out_width(act: nn.Module) -> int:
    """Outputs per unit of an activation module (2 for CReLU, else 1)."""
    return getattr(act, "width", 1)


def unit_activation(act: nn.Module) -> nn.Module:
    """The module whose output is the units' activation (CReLU: its ``units`` identity)."""
    return act.units if isinstance(act, CReLU) else act


def read_by(act: nn.Module, slices: list[Slice]) -> list[Slice]:
    """The consumer's slices of units passed through ``act``: ``blocks`` = its outputs per unit."""
    return [dataclasses.replace(s, blocks=out_width(act)) for s in slices]


def image_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``input_shape`` as (C, H, W), or a UserError telling the user to pick an image model."""
    if len(input_shape) != 3:
        raise UserError(f"model {model}: needs image inputs (C, H, W), got shape {tuple(input_shape)} "
                        f"(use model.name=mlp for flat inputs)")
    return tuple(input_shape)  # type: ignore[return-value]


def check_groups(key: str, norm: str, groups: int, widths: list[int]) -> None:
    """GroupNorm needs every width divisible by the group count."""
    if norm != "groupnorm":
        return
    if groups < 1:
        raise UserError(f"config: {key}.groups: must be ≥ 1")
    bad = [w for w in widths if w % groups]
    if bad:
        raise UserError(f"config: {key}.groups={groups} does not divide widths {bad} "
                        f"(pick groups dividing every width, e.g. {math.gcd(*widths)})")


def conv_slices(conv: nn.Conv2d, dim: int) -> list[Slice]:
    """Slices of a PyTorch-default-initialised Conv2d: weight and bias ~ U(±1/√fan_in).

    ``dim=0`` gives the incoming side of its output channels (kernel slice ``[c]`` + bias);
    ``dim=1`` the outgoing side of its input channels (kernel slice ``[:, c]`` only).
    """
    if conv.groups != 1:
        raise ValueError("conv_slices: grouped convolutions are not unit-mapped")
    return default_init_slices(conv.weight, conv.bias, conv.weight[0].numel(), dim)


def linear_column_slices(lin: nn.Linear, group: int = 1) -> list[Slice]:
    """Outgoing side of units read by a PyTorch-default Linear, ``group`` columns per unit.

    A conv output (C, s, s) flattened into a Linear gives channel c the columns
    [c·s², (c+1)·s²): ``group = s²``.
    """
    return [Slice(lin.weight, 1, "uniform", 1.0 / math.sqrt(lin.in_features), group=group)]
