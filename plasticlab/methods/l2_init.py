"""``l2-init``: regenerative regularisation towards the initial parameters (Kumar et al. 2023).

Loss term λ·Σ‖θ − θ₀‖² with θ₀ the parameters at ``setup`` (before step 0). θ₀ is part of the
method state, so a resumed run keeps the original anchor. Config:
``method: {name: l2-init, coef: 1.0e-3, exclude_bias_norm: false}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from plasticlab import registry
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import grads_of, penalised_parameters
from plasticlab.registry import UserError


@registry.register(registry.METHODS, "l2-init")
@dataclass
class L2Init(MethodDefaults):
    """Loss term λ·Σ (θ − θ₀)²; gradient 2λ(θ − θ₀)."""

    name: str = "l2-init"
    coef: float = 1.0e-3
    """λ."""
    exclude_bias_norm: bool = False
    """Leave biases and norm gains/biases out of the penalty."""

    def validate(self, key: str) -> None:
        if self.coef < 0:
            raise UserError(f"config: {key}.coef: must be ≥ 0, got {self.coef}")

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        self.params_ = penalised_parameters(ctx.model, self.exclude_bias_norm)
        self.anchor_ = [p.detach().clone() for p in self.params_]

    @torch.no_grad()
    def add_grad(self) -> None:
        grads = grads_of(self.params_)
        torch._foreach_add_(grads, torch._foreach_sub(self.params_, self.anchor_), alpha=2 * self.coef)

    def state_dict(self) -> dict:
        return {"anchor": [a.clone() for a in self.anchor_]}

    def load_state_dict(self, state: dict) -> None:
        for a, saved in zip(self.anchor_, state["anchor"], strict=True):
            a.copy_(saved)
