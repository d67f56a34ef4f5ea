"""``spectral``: spectral regularisation (after Lewandowski et al., ICLR 2025).

For every weight matrix W (parameters with ≥ 2 dims; a conv kernel (out, in, k, k) is read as
(out, in·k·k)) the loss gets λ·(σ_max(W) − target)². σ_max is estimated by power iteration with
persistent vectors u, v (``iterations`` rounds per step, run before the penalty is formed):

    v ← normalise(Wᵀu),  u ← normalise(W v),  σ = uᵀ W v

The gradient treats u, v as constants, ∂σ/∂W = u vᵀ, so the term adds 2λ(σ − target)·u vᵀ to
W's ``.grad`` after backward (``add_grad``; σ in fp32, also under ``precision: bf16``). ``target`` is
each matrix's exact σ_max at setup (default) or one fixed number for all. Config:
``method: {name: spectral, coef: 0.1, iterations: 2, target: null}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import grads_of, weight_matrices


@torch.no_grad()
def power_iteration_(w: torch.Tensor, u: torch.Tensor, v: torch.Tensor, iterations: int) -> None:
    """Refine the top singular vectors (u (out,), v (in,)) of ``w`` (out, in) in place."""
    for _ in range(iterations):
        v.copy_(F.normalize(w.t() @ u.to(w.dtype), dim=0, eps=1e-12))
        u.copy_(F.normalize(w @ v.to(w.dtype), dim=0, eps=1e-12))


def as_matrix(p: torch.Tensor) -> torch.Tensor:
    """(out, everything else) view of a weight tensor."""
    return p.reshape(p.shape[0], -1)


@registry.register(registry.METHODS, "spectral")
@dataclass
class Spectral(MethodDefaults):
    """Penalty λ·Σ_W (uᵀWv − target_W)² with power-iteration vectors u, v kept across steps."""

    per_step = True
    busy: ClassVar[dict] = {"coef": 0.1, "iterations": 1}

    name: str = "spectral"
    coef: float = field(default=0.1, metadata=bounds(ge=0))
    """λ (Liu & Mou's MLP baseline: 0.1)."""
    iterations: int = field(default=2, metadata=bounds(ge=1))
    """Power-iteration rounds per optimiser step (k)."""
    target: float | None = field(default=None, metadata=bounds(ge=0))
    """σ_max each matrix is pulled towards; null = its own value at initialisation."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        self.weights_ = weight_matrices(ctx.model)
        self.u_, self.v_, self.target_ = [], [], []
        for p in self.weights_:
            # why: start from the exact top singular pair so the estimate is right from step 0.
            m = as_matrix(p.detach()).float()
            svd_u, s, svd_vh = torch.linalg.svd(m, full_matrices=False)
            self.u_.append(svd_u[:, 0].contiguous())
            self.v_.append(svd_vh[0].contiguous())
            t = s[0] if self.target is None else torch.tensor(self.target, device=m.device)
            self.target_.append(t.clone())

    def sigmas(self) -> list[torch.Tensor]:
        """Current estimates uᵀWv (no refinement), detached."""
        with torch.no_grad():
            return [u @ as_matrix(p).float() @ v
                    for p, u, v in zip(self.weights_, self.u_, self.v_, strict=True)]

    @torch.no_grad()
    def add_grad(self) -> None:
        """Refine u, v; then ∂/∂W λ(σ − target)² = 2λ(σ − target)·u vᵀ with σ = uᵀWv."""
        grads = grads_of(self.weights_)
        for p, g, u, v, t in zip(self.weights_, grads, self.u_, self.v_, self.target_, strict=True):
            w = as_matrix(p).float()
            power_iteration_(w, u, v, self.iterations)
            scale = 2 * self.coef * (u @ w @ v - t)
            g.add_(torch.outer(u * scale, v).view(p.shape).to(g.dtype))

    def state_dict(self) -> dict:
        return {"u": [u.clone() for u in self.u_], "v": [v.clone() for v in self.v_],
                "target": [t.clone() for t in self.target_]}

    def load_state_dict(self, state: dict) -> None:
        for mine, saved in zip(self.u_ + self.v_ + self.target_, state["u"] + state["v"] + state["target"],
                               strict=True):
            mine.copy_(saved)
