"""The unit map: one shared description of a model's hidden units.

A *unit* is a hidden neuron of an MLP, a channel of a conv net, or a feed-forward neuron of a
transformer block. For every layer of units the map records which tensor slices belong to each
unit: its *incoming* weights (the rows that compute it, plus its bias and norm gain/bias), its
*outgoing* weights (the columns of the next layer that read it), the module whose output is the
unit's activation, and how each slice was initialised. ReDo, Continual Backprop, reset-frozen
and the dormant/frozen/rank diagnostics all read this one map; models build it
(``model.unit_layers()``), and any other module gets one read off its computation graph
(``plasticlab.unit_discovery``), so no method guesses layer structure from parameter names.

Usage::

    layers = build(model)
    for layer in layers:
        w_in = layer.incoming[0].rows()      # (units, fan_in) view of the incoming weights
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn


@dataclass
class Slice:
    """A tensor whose index ``i`` along ``dim`` (in blocks of ``group``) belongs to unit ``i``.

    ``init`` and ``scale`` say how the tensor was initialised, so a unit can be re-drawn from
    the same distribution: ``uniform`` on [−scale, scale], ``normal`` with std ``scale``,
    or the constants ``zeros`` / ``ones`` (biases, norm parameters, running statistics).
    """

    tensor: torch.Tensor
    dim: int
    init: Literal["uniform", "normal", "zeros", "ones"]
    scale: float = 0.0
    group: int = 1
    is_weight: bool = True
    """A weight matrix/kernel (as opposed to a bias, norm parameter or buffer)."""
    blocks: int = 1
    """The axis ``dim`` holds this many consecutive copies of the (units × group) layout, and unit
    ``i`` owns its group in each: e.g. the consumer of a concatenated activation [relu(x), relu(−x)]
    reads unit i at columns i and i + units (``blocks=2``)."""

    def rows(self) -> torch.Tensor:
        """(units, everything else) — each row is one unit's entries (a view when ``blocks`` is 1)."""
        t = self.tensor.movedim(self.dim, 0)
        if self.blocks == 1:
            return t.reshape(t.shape[0] // self.group, -1)
        t = t.reshape(self.blocks, t.shape[0] // (self.blocks * self.group), -1)
        return t.transpose(0, 1).reshape(t.shape[1], -1)

    @property
    def init_std(self) -> float:
        """Standard deviation of the init distribution (0 for constants)."""
        if self.init == "uniform":
            return self.scale / math.sqrt(3.0)
        return self.scale if self.init == "normal" else 0.0

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fresh tensor of the same shape from the init distribution."""
        t = self.tensor
        if self.init == "zeros":
            return torch.zeros_like(t)
        if self.init == "ones":
            return torch.ones_like(t)
        out = torch.empty(t.shape, dtype=t.dtype, device=t.device)
        if self.init == "uniform":
            out.uniform_(-self.scale, self.scale, generator=generator)
        else:
            out.normal_(0.0, self.scale, generator=generator)
        return out

    def unit_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Broadcast a (units,) bool mask to a mask of this tensor's shape."""
        m = mask.repeat_interleave(self.group) if self.group > 1 else mask
        m = m.repeat(self.blocks) if self.blocks > 1 else m
        shape = [1] * self.tensor.ndim
        shape[self.dim] = m.numel()
        return m.view(shape).expand_as(self.tensor)


@dataclass
class UnitLayer:
    """One layer of hidden units."""

    name: str
    count: int
    incoming: list[Slice]
    outgoing: list[Slice]
    activation: nn.Module
    """Module whose forward output is the units' activation: (B, units), (B, units, H, W)
    or (B, L, units) — the unit axis is ``act_dim``."""
    act_dim: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def in_weight(self) -> Slice:
        return next(s for s in self.incoming if s.is_weight)

    @property
    def out_weight(self) -> Slice:
        return next(s for s in self.outgoing if s.is_weight)


def build(model: nn.Module, example_input: object = None) -> list[UnitLayer]:
    """The unit map of ``model``: its own ``unit_layers()`` where it defines one (an explicit map
    always wins), else the automatic map read off its graph (``plasticlab.unit_discovery``;
    ``example_input`` is recorded through a forward when ``torch.fx`` cannot trace the model).
    May be empty; ``why_empty(model)`` then says why."""
    fn = getattr(model, "unit_layers", None)
    if callable(fn):
        return fn()
    from plasticlab.unit_discovery import discover

    return discover(model, example_input).layers


def why_empty(model: nn.Module) -> str:
    """One line: why ``build(model)`` found no unit layer."""
    if callable(getattr(model, "unit_layers", None)):
        return f"{type(model).__name__}.unit_layers() returned no layer"
    from plasticlab.unit_discovery import discover

    return discover(model).reason


def default_init_slices(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int, dim: int) -> list[Slice]:
    """Slices of a layer with PyTorch's default init (weight and bias ~ U(±1/√fan_in)).

    ``dim=0`` gives the incoming side (output rows/channels + bias); ``dim=1`` the outgoing side
    (input columns/channels of the weight only).
    """
    bound = 1.0 / math.sqrt(fan_in)
    if dim == 1:
        return [Slice(weight, 1, "uniform", bound)]
    out = [Slice(weight, 0, "uniform", bound)]
    if bias is not None:
        out.append(Slice(bias, 0, "uniform", bound, is_weight=False))
    return out


def linear_slices(lin: nn.Linear, dim: int) -> list[Slice]:
    """Slices of a PyTorch-default-initialised Linear (``default_init_slices``)."""
    return default_init_slices(lin.weight, lin.bias, lin.in_features, dim)


def norm_slices(norm: nn.Module | None) -> list[Slice]:
    """Per-unit gain/bias (and running statistics) of a LayerNorm/BatchNorm/GroupNorm."""
    if norm is None or isinstance(norm, nn.Identity):
        return []
    out = []
    if getattr(norm, "weight", None) is not None:
        out.append(Slice(norm.weight, 0, "ones", is_weight=False))
    if getattr(norm, "bias", None) is not None:
        out.append(Slice(norm.bias, 0, "zeros", is_weight=False))
    if getattr(norm, "running_mean", None) is not None:
        out.append(Slice(norm.running_mean, 0, "zeros", is_weight=False))
        out.append(Slice(norm.running_var, 0, "ones", is_weight=False))
    return out


@torch.no_grad()
def reinit_units(layer: UnitLayer, mask: torch.Tensor, *, outgoing: Literal["zero", "init", "keep"],
                 generator: torch.Generator | None = None, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Re-draw the incoming slices of the units in ``mask`` from their init distribution.

    Outgoing weights of those units become zero (``"zero"``), are re-drawn (``"init"``) or are
    left alone (``"keep"``). The optimiser state (e.g. Adam moments) of every changed entry is
    zeroed. Entries of other units stay bit-identical. No host sync: selection is by mask.
    """
    for s in layer.incoming:
        m = s.unit_mask(mask)
        s.tensor.copy_(torch.where(m, s.draw(generator), s.tensor))
        reset_optimizer_state(optimizer, s.tensor, m)
    if outgoing == "keep":
        return
    for s in layer.outgoing:
        m = s.unit_mask(mask)
        fresh = s.draw(generator) if outgoing == "init" else torch.zeros_like(s.tensor)
        s.tensor.copy_(torch.where(m, fresh, s.tensor))
        reset_optimizer_state(optimizer, s.tensor, m)


@torch.no_grad()
def reset_optimizer_state(optimizer: torch.optim.Optimizer | None, tensor: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero every per-entry optimiser buffer (momentum, Adam moments) of ``tensor`` where ``mask``.

    Scalar state such as Adam's ``step`` is shared by the whole tensor and left as is.
    """
    if optimizer is None or not isinstance(tensor, nn.Parameter):
        return
    state = optimizer.state.get(tensor)
    if not state:
        return
    for value in state.values():
        if torch.is_tensor(value) and value.shape == tensor.shape:
            value.masked_fill_(mask, 0)
