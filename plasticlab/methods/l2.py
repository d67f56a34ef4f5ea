"""``l2``: plain L2 regularisation as a loss term, λ·Σ‖θ‖² (sum of squares, no ½).

Config: ``method: {name: l2, coef: 1.0e-3, exclude_bias_norm: false}``. The gradient it adds is
2λθ (added to ``.grad`` after backward, ``add_grad``: the term's exact gradient without autograd
nodes). Unlike ``optim.weight_decay`` it is part of the loss, so Adam rescales it (coupled L2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import grads_of, penalised_parameters


@registry.register(registry.METHODS, "l2")
@dataclass
class L2(MethodDefaults):
    """Loss term λ·Σ_θ θ² over all parameters (or weights only)."""

    per_step = True
    busy: ClassVar[dict] = {"coef": 1e-2}

    name: str = "l2"
    coef: float = field(default=1.0e-3, metadata=bounds(ge=0))
    """λ (Liu & Mou's MLP baseline: 1e-3)."""
    exclude_bias_norm: bool = False
    """Leave biases and norm gains/biases out of the penalty."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        self.params_ = penalised_parameters(ctx.model, self.exclude_bias_norm)

    @torch.no_grad()
    def add_grad(self) -> None:
        torch._foreach_add_(grads_of(self.params_), self.params_, alpha=2 * self.coef)
