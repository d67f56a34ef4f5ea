"""Adam/AdamW with a step count per entry, so a re-initialised entry restarts its bias correction.

torch's Adam keeps one step count t per tensor. When a method zeroes the moments of some entries
(ReDo, CBP, reset-frozen) while t stays large, the bias corrections 1 − β^t are ≈ 1 and those
entries take steps up to ~6× larger than a fresh Adam would for hundreds of steps
(m/√v ≈ (1−β₁^k)/√(1−β₂^k) after k steps). Here ``step`` has the parameter's shape, so
``units.reset_optimizer_state`` zeroes it together with the moments (Dohare et al.'s AdamGnT):

    k ← k + 1;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
    θ ← θ − lr · (m / (1−β₁^k)) / (√(v / (1−β₂^k)) + ε)

With ``decoupled=True`` weight decay is AdamW's θ ← θ(1 − lr·wd) before the update; otherwise it
is coupled (g ← g + wd·θ), as in torch's Adam. Without resets it equals torch's Adam/AdamW up to
rounding. No host sync.
"""

from __future__ import annotations

import torch


class EntryAdam(torch.optim.Optimizer):
    """Adam (or AdamW with ``decoupled=True``) whose ``step`` state is a per-entry tensor."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "decoupled": decoupled})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                k, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                if wd != 0:
                    if group["decoupled"]:
                        p.mul_(1 - lr * wd)
                    else:
                        g = g.add(p, alpha=wd)
                k.add_(1)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                c1 = 1 - torch.pow(beta1, k)
                c2 = 1 - torch.pow(beta2, k)
                p.addcdiv_(m / c1, (v / c2).sqrt_().add_(eps), value=-lr)
        return loss
