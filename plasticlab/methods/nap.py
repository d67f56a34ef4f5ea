"""``nap``: Normalize-and-Project (Lyle, Zheng, Khetarpal, Martens, van Hasselt, Pascanu & Dabney 2024).

NaP = a normalisation layer before every nonlinearity (the model's part: ``model.norm=layernorm``)
+ after every ``every``-th optimiser step, each weight tensor W (≥ 2 dims: linear weights, conv
kernels, including the head) is projected back onto the sphere of its initial norm,

    W ← W · ‖W₀‖_F / ‖W‖_F,

and each norm layer's gain γ and offset β are projected jointly onto their initial joint norm,
(γ, β) ← (γ, β) · ‖(γ₀, β₀)‖ / ‖(γ, β)‖. With normalisation after a layer, its output does not
depend on the scale of W, so parameter-norm growth only shrinks the effective learning rate;
fixing the norm keeps that rate constant (the paper's point: the schedule becomes explicit).

Which parameters are projected follows the Plasticine reference implementation
(github.com/RLE-Foundation/Plasticine, ``plasticine_normalize_and_project``): every weight not
in a norm layer, the norm gains and offsets jointly, and no Linear/conv biases. Departure: the
reference projects (γ, β) to a fixed norm √2, which is their initial norm only for a width-1
layer; plasticlab uses the recorded initial norm (√width for γ₀ = 1, β₀ = 0).
``norm_params: false`` leaves the norm parameters free.

The method refuses a model without normalisation layers (NaP's first half is the architecture).
Config: ``method: {name: nap, every: 1, norm_params: true}`` with ``model.norm: layernorm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import is_norm, weight_matrices
from plasticlab.registry import UserError


def joint_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖concat(tensors)‖₂ (fp32, 0-dim, on the device)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))


@registry.register(registry.METHODS, "nap")
@dataclass
class NaP(MethodDefaults):
    """Project every weight tensor (and each norm layer's gain+offset) back to its initial norm."""

    per_step = True
    busy: ClassVar[dict] = {}

    name: str = "nap"
    every: int = field(default=1, metadata=bounds(ge=1))
    """Project after every N-th optimiser step (the paper: every step)."""
    norm_params: bool = True
    """Also project each norm layer's gain and offset jointly to their initial joint norm."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        norms = [m for m in ctx.model.modules() if is_norm(m)]
        if not norms:
            raise UserError("method nap: the model has no normalisation layers; NaP needs one before each "
                            "activation (set model.norm=layernorm)")
        in_norms = {id(p) for m in norms for p in m.parameters(recurse=False)}
        self.groups_ = [[p] for p in weight_matrices(ctx.model) if id(p) not in in_norms]
        if self.norm_params:
            self.groups_ += [g for m in norms if (g := [p for p in m.parameters(recurse=False) if p.requires_grad])]
        self.target_ = [joint_norm(g).detach() for g in self.groups_]

    @torch.no_grad()
    def project(self) -> None:
        """Scale each group back to its initial norm (device ops, no sync)."""
        for group, target in zip(self.groups_, self.target_, strict=True):
            factor = target / joint_norm(group).clamp_min(1e-12)
            for p in group:
                p.mul_(factor.to(p.dtype))

    def after_step(self, step: int, x: torch.Tensor) -> None:
        self.project()

    def state_dict(self) -> dict:
        return {"target": [t.clone() for t in self.target_]}

    def load_state_dict(self, state: dict) -> None:
        for mine, saved in zip(self.target_, state["target"], strict=True):
            mine.copy_(saved)
