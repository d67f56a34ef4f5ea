"""``weight-clip``: Weight Clipping (Elsayed, Lan, Lyle & Mahmood 2024), θ ← clip(θ, −κ·s, κ·s).

After every ``every``-th optimiser step each parameter is clipped entrywise to ±κ·s, where s is
the bound of its initialisation distribution: the scale of U(−s, s), or √3·σ for N(0, σ²) (the
uniform bound with the same variance). Weights stay within κ times the range they started in, so
they cannot grow into the large-magnitude, hard-to-move regime that costs plasticity.

Where s comes from:

* parameters the model describes (unit map + ``head_slices()``): their recorded init;
* other weight tensors (≥ 2 dims): PyTorch's default bound 1/√fan_in;
* parameters initialised to constants (norm gains and biases, zero biases) and other 1-d
  parameters: not clipped.

Departures from the reference code (github.com/mohmdelsayed/weight-clipping, ``InitBounds``):
it walks the parameters in order and gives every 1-d parameter the bound of the weight before it,
so LayerNorm gains (init 1) are clipped to κ/√fan_in — far below 1 for κ = 1 —, and it needs a
weight before every 1-d parameter; plasticlab reads each tensor's own initialisation instead and
leaves constant-initialised parameters alone. κ defaults to the reference's 1.0.

Config: ``method: {name: weight-clip, kappa: 1.0, every: 1}``. As a transfer intervention it
clips once, between pre-training and fine-tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from plasticlab import registry, unit_discovery
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.units import Slice


def init_bound(p: torch.Tensor, described: Slice | None) -> float | None:
    """s of parameter ``p``: its recorded init's bound, 1/√fan_in for other weights, None = do not clip."""
    if described is not None:
        if described.init == "uniform":
            return described.scale
        if described.init == "normal":
            return math.sqrt(3.0) * described.scale
        return None
    if p.ndim >= 2:
        fan_in = p.shape[1] * math.prod(p.shape[2:])
        return 1.0 / math.sqrt(fan_in)
    return None


@registry.register(registry.METHODS, "weight-clip")
@dataclass
class WeightClip(MethodDefaults):
    """Clip every parameter to ±κ × its initialisation bound after each step."""

    per_step = True
    intervention = True
    busy: ClassVar[dict] = {"kappa": 0.5}

    name: str = "weight-clip"
    kappa: float = field(default=1.0, metadata=bounds(gt=0))
    """κ: multiple of each parameter's initialisation bound allowed."""
    every: int = field(default=1, metadata=bounds(ge=1))
    """Clip after every N-th optimiser step."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        slices = {id(s.tensor): s for layer in ctx.units for s in layer.incoming + layer.outgoing}
        slices.update({id(s.tensor): s for s in unit_discovery.head_slices(ctx.model) or []})
        self.clipped_ = []
        self.bounds_ = []
        for p in ctx.model.parameters():
            if not p.requires_grad:
                continue
            s = init_bound(p, slices.get(id(p)))
            if s is not None:
                self.clipped_.append(p)
                self.bounds_.append(self.kappa * s)

    @torch.no_grad()
    def clip(self) -> None:
        """θ ← clip(θ, −κ·s, κ·s) for every clipped parameter (device ops, no sync)."""
        for p, b in zip(self.clipped_, self.bounds_, strict=True):
            p.clamp_(-b, b)

    def after_step(self, step: int, x: torch.Tensor) -> None:
        self.clip()

    def intervene(self) -> None:
        self.clip()
