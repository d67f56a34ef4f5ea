"""``l2-init``: regenerative regularisation towards the initial parameters (Kumar et al. 2023).

Loss term λ·Σ‖θ − θ₀‖² with θ₀ the parameters at ``setup`` (before step 0). θ₀ is part of the
method state, so a resumed run keeps the original anchor. Config:
``method: {name: l2-init, coef: 1.0e-3, exclude_bias_norm: false}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from plasticlab import registry
from plasticlab.methods.base import MethodContext
from plasticlab.methods.common import grads_of
from plasticlab.methods.l2 import L2


@registry.register(registry.METHODS, "l2-init")
@dataclass
class L2Init(L2):
    """Loss term λ·Σ (θ − θ₀)²; gradient 2λ(θ − θ₀). Options and validation as ``l2``."""

    busy: ClassVar[dict] = {"coef": 1e-2}

    name: str = "l2-init"

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
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
