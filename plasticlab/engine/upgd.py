"""UPGD: utility-based perturbed gradient descent (Elsayed & Mahmood, ICLR 2024).

The published optimiser (the weight-wise, first-order utility with global max scaling, Gaussian
noise and decoupled weight decay; the ``UPGD`` class of the authors' README, mohmdelsayed/upgd).
Per step t and every entry of every parameter θ with gradient g:

    u ← β·u + (1−β)·(−g·θ)                          (first-order utility of the weight)
    M = max over all entries of all parameters of u  (global max, before bias correction)
    ū = sigmoid( (u / (1 − β^t)) / M )              (scaled utility in (0, 1))
    θ ← θ·(1 − lr·wd) − 2·lr·(g + σ·ξ)·(1 − ū)      (ξ ~ N(0, 1) per entry)

Useful weights (ū → 1) are protected from both the gradient and the noise; useless ones
(ū → 0) get plain SGD plus a perturbation that keeps them plastic. Departures from the reference
code: ξ is drawn from the optimiser's own generator, seeded from the run seed and saved in
``state_dict`` (resume-exact; the reference uses the global RNG); the step count t is a 0-dim
tensor and M a device scalar, so no step syncs with the host; a parameter without a gradient is
skipped (the reference would fail on it). Kept as in the reference: the factor 2 in the update,
the max taken over the raw (not bias-corrected) utilities, and the division by M as is (M ≤ 0 flips
or breaks the scaling; M = 0 gives NaN).
"""

from __future__ import annotations

import torch


class UPGD(torch.optim.Optimizer):
    """UPGD (Elsayed & Mahmood 2024) as published; ``generator`` draws the perturbations."""

    def __init__(self, params, lr: float = 1e-5, weight_decay: float = 0.001, beta_utility: float = 0.999,
                 sigma: float = 0.001, generator: torch.Generator | None = None):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "beta_utility": beta_utility,
                                  "sigma": sigma})
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        live = [(group, p) for group in self.param_groups for p in group["params"] if p.grad is not None]
        maxima = []
        for group, p in live:
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), device=p.device)
                state["avg_utility"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            beta = group["beta_utility"]
            state["avg_utility"].mul_(beta).add_(-p.grad * p, alpha=1 - beta)
            maxima.append(state["avg_utility"].max())
        if not live:
            return loss
        global_max = torch.stack(maxima).max()
        for group, p in live:
            state = self.state[p]
            beta, lr = group["beta_utility"], group["lr"]
            correction = 1 - torch.pow(beta, state["step"])
            scaled = torch.sigmoid(state["avg_utility"] / correction / global_max)
            noise = torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
            p.mul_(1 - lr * group["weight_decay"]).add_((p.grad + noise * group["sigma"]) * (1 - scaled),
                                                        alpha=-2.0 * lr)
        return loss

    def state_dict(self) -> dict:
        sd = super().state_dict()
        if self.generator is not None:
            sd["generator"] = self.generator.get_state()
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        rng = state_dict.pop("generator", None)
        super().load_state_dict(state_dict)
        if rng is not None and self.generator is not None:
            self.generator.set_state(rng)
