"""``parseval``: Parseval regularisation (Chung, Cherif, Meger & Precup, NeurIPS 2024).

For the incoming weight matrix W (out × in; a conv kernel read as (out, in·k·k)) of every layer
of hidden units — every layer but the output head — the loss gets

    λ · ‖W Wᵀ − s·I‖²_F

which pulls the rows of W towards an orthogonal set of equal squared norm s. Its gradient,
4λ (W Wᵀ − s I) W, is added to ``.grad`` after backward (``add_grad``; computed in fp32).

Departures from the reference code (github.com/wechu/parseval_reg, ``agent.py``):

* s: the reference initialises orthogonally with gain √2 and uses s = gain² = 2. plasticlab keeps
  each model's own init (PyTorch's U(±1/√fan_in), rows of squared norm ≈ 1/3), where s = 2 would
  inflate every row by √6; ``scale: null`` (default) takes s per matrix as the mean squared row
  norm at setup, ‖W₀‖²_F / out, so only the angles between rows are pulled at first. A number
  sets one s for every matrix, as in the reference.
* the reference multiplies λ by (64/width)² (its λ was tuned at width 64); plasticlab uses ``coef``
  as given. Its optional extras (learnable input scale, diagonal layers, grouped penalty,
  row-normalised penalty) are not included.
* the matrices are those the unit map names as the incoming weights of hidden units, which for
  the MLP and conv nets is every layer but the head, as in the reference.

Config: ``method: {name: parseval, coef: 1.0e-3, scale: null}`` (λ = 1e-3: the reference's
default for Gridworld and MetaWorld).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import grads_of, require_units


def parseval_penalty(w: torch.Tensor, s: float | torch.Tensor) -> torch.Tensor:
    """‖W Wᵀ − s I‖²_F of a weight tensor read as (out, rest)."""
    m = w.reshape(w.shape[0], -1).float()
    gram = m @ m.t()
    return (gram - s * torch.eye(m.shape[0], device=m.device)).pow(2).sum()


@registry.register(registry.METHODS, "parseval")
@dataclass
class Parseval(MethodDefaults):
    """Penalty λ·Σ_hidden ‖W Wᵀ − s I‖²_F with closed-form gradient 4λ(W Wᵀ − s I)W."""

    per_step = True
    busy: ClassVar[dict] = {"coef": 0.1}

    name: str = "parseval"
    coef: float = field(default=1.0e-3, metadata=bounds(ge=0))
    """λ (reference default for Gridworld and MetaWorld: 1e-3)."""
    scale: float | None = field(default=None, metadata=bounds(gt=0))
    """s: target squared row norm; null = each matrix's mean squared row norm at setup."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        require_units(ctx, self.name)
        self.weights_ = [layer.in_weight.tensor for layer in ctx.units]
        self.scale_ = []
        for p in self.weights_:
            m = p.detach().reshape(p.shape[0], -1).float()
            s = m.pow(2).sum() / m.shape[0] if self.scale is None else torch.tensor(self.scale, device=m.device)
            self.scale_.append(s)

    def penalty(self) -> torch.Tensor:
        """Σ ‖W Wᵀ − s I‖²_F over the regularised matrices (without λ)."""
        return sum(parseval_penalty(p, s) for p, s in zip(self.weights_, self.scale_, strict=True))

    @torch.no_grad()
    def add_grad(self) -> None:
        for p, g, s in zip(self.weights_, grads_of(self.weights_), self.scale_, strict=True):
            m = p.reshape(p.shape[0], -1).float()
            gram = m @ m.t()
            gram.diagonal().sub_(s)
            g.add_(((4 * self.coef) * (gram @ m)).view(p.shape).to(g.dtype))

    def state_dict(self) -> dict:
        return {"scale": [s.clone() for s in self.scale_]}

    def load_state_dict(self, state: dict) -> None:
        for mine, saved in zip(self.scale_, state["scale"], strict=True):
            mine.copy_(saved)
