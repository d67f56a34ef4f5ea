"""TRAC: a parameter-free scaling of a base optimiser for continual learning (Muppidi, Zhang,
Sherstov & Arena, "Fast TRAC: a parameter-free optimizer for lifelong reinforcement learning",
NeurIPS 2024; reference code ComputationalRobotics/TRAC, ``trac_optimizer/trac.py``).

TRAC keeps the parameters at θ = θ_ref + S·Δ, where θ_ref is the parameters before the first
step, Δ the base optimiser's accumulated displacement and S = max(Σ_j s_j, 0) a scale tuned
online, one tuner per discount β_j (Cutkosky et al.'s Mechanic structure with erfi tuners). Per
step, with g the gradient at θ and u the base optimiser's (Adam's) update from θ:

    Δ   = (θ − θ_ref) / (Σ_j s_j + ε)                (the displacement, recovered from θ)
    h   = Σ_params ⟨Δ, g⟩
    v_j ← β_j²·v_j + h²;   σ_j ← β_j·σ_j − h
    s_j = s_init / erfi(1/√2) · erfi( σ_j / (√2·√v_j + ε) )
    θ   ← θ_ref + (Δ + u)·max(Σ_j s_j, 0)

(v_j starts at 0, σ_j at 1e-8, s_j at 0, so S starts near s_init and θ near θ_ref.) θ_ref is taken
when the optimiser is built, i.e. the run's initialisation (the reference takes it at the first
step: the same parameters, since nothing changes them in between). Because Δ is
recovered from θ, entries that a reset method re-initialises keep their new values. Departures
from the reference code: erfi is evaluated in float64 by its Taylor series for |x| ≤ 6 and its
asymptotic series beyond (the reference uses a complex Faddeeva approximation in float32); it
overflows to inf for arguments above ≈ 26.6, where the reference raises on NaN; no step syncs
with the host (no NaN checks and no log file); θ_ref and the tuner state are kept outside the
per-parameter state, so a method that drops a parameter's optimiser state (head-reset,
full-reset) restarts only the base optimiser's moments, not TRAC's reference.
"""

from __future__ import annotations

import math

import torch

ERFI_SERIES_TERMS = 130
"""Taylor terms for |x| ≤ 6 (the last is < 1e-20 of the sum there)."""
ERFI_SWITCH = 6.0
ERFI_ASYMPTOTIC_TERMS = 30
"""Asymptotic terms for |x| > 6 (the smallest term of the series is ≈ e^{−36} there)."""


def erfi(x: torch.Tensor) -> torch.Tensor:
    """The imaginary error function erfi(x) = −i·erf(ix) = 2/√π ∫₀ˣ e^{t²} dt, elementwise, float64.

    |x| ≤ 6: 2/√π Σₙ x^{2n+1} / (n!(2n+1)); beyond: e^{x²}/(x√π)·Σₖ (2k−1)!!/(2x²)^k (asymptotic,
    relative error < 1e-14 against scipy over [−30, 30]). Odd; device ops only.
    """
    x = x.double()
    a = x.abs()
    small = a.clamp(max=ERFI_SWITCH)
    sq = small * small
    term = small.clone()
    total = small.clone()
    for n in range(1, ERFI_SERIES_TERMS):
        term = term * sq / n
        total = total + term / (2 * n + 1)
    series = total * (2 / math.sqrt(math.pi))
    big = a.clamp(min=ERFI_SWITCH)
    inv = 1.0 / (2 * big * big)
    coef = torch.ones_like(big)
    acc = torch.ones_like(big)
    for k in range(1, ERFI_ASYMPTOTIC_TERMS):
        coef = coef * (2 * k - 1) * inv
        acc = acc + coef
    asymptotic = torch.exp(big * big) / (big * math.sqrt(math.pi)) * acc
    return torch.sign(x) * torch.where(a <= ERFI_SWITCH, series, asymptotic)


class TRACMixin:
    """Adds TRAC to an optimiser class: ``class TRACAdam(TRACMixin, torch.optim.Adam)``.

    Call ``init_trac(betas, s_init, eps)`` after the base ``__init__``.
    """

    def init_trac(self, betas: list[float], s_init: float, eps: float) -> None:
        params = [p for g in self.param_groups for p in g["params"]]
        dev = params[0].device if params else torch.device("cpu")
        self.trac_eps = eps
        self.trac_s_init = s_init
        self.trac = {
            "betas": torch.tensor(list(betas), dtype=torch.float64, device=dev),
            "s": torch.zeros(len(betas), dtype=torch.float64, device=dev),
            "variance": torch.zeros(len(betas), dtype=torch.float64, device=dev),
            "sigma": torch.full((len(betas),), 1e-8, dtype=torch.float64, device=dev),
            "ref": [p.detach().clone() for p in params],
        }

    @torch.no_grad()
    def step(self, closure=None):
        t = self.trac
        params = [p for g in self.param_groups for p in g["params"]]
        live = [(p, ref) for p, ref in zip(params, t["ref"], strict=True) if p.grad is not None]
        denom = t["s"].sum() + self.trac_eps
        deltas = [((p - ref) / denom).to(p.dtype) for p, ref in live]
        h = sum(((d * p.grad).sum().double() for d, (p, _) in zip(deltas, live, strict=True)),
                torch.zeros((), dtype=torch.float64, device=t["s"].device))
        before = [p.clone() for p, _ in live]
        loss = super().step(closure)
        betas = t["betas"]
        t["variance"].mul_(betas * betas).add_(h * h)
        t["sigma"].mul_(betas).sub_(h)
        f_term = self.trac_s_init / erfi(torch.tensor(1 / math.sqrt(2), dtype=torch.float64))
        t["s"].copy_(f_term.to(betas.device) * erfi(t["sigma"] / (math.sqrt(2) * t["variance"].sqrt() + self.trac_eps)))
        scale = t["s"].sum().clamp(min=0)
        for (p, ref), d, x in zip(live, deltas, before, strict=True):
            d.add_(p - x)
            p.copy_(ref + d * scale.to(p.dtype))
        return loss

    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["trac"] = {k: ([r.clone() for r in v] if isinstance(v, list) else v.clone()) for k, v in self.trac.items()}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop("trac", None)
        super().load_state_dict(state_dict)
        if saved is not None:
            for k, v in saved.items():
                if isinstance(v, list):
                    for mine, s in zip(self.trac[k], v, strict=True):
                        mine.copy_(s)
                else:
                    self.trac[k].copy_(v)


class TRACAdam(TRACMixin, torch.optim.Adam):
    """TRAC over torch's Adam (coupled L2 weight decay)."""


def trac_over(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """The TRAC class over ``base`` (TRACAdam for torch's Adam; a subclass built once per base otherwise)."""
    if base is torch.optim.Adam:
        return TRACAdam
    return _TRAC_CLASSES.setdefault(base, type(f"TRAC{base.__name__}", (TRACMixin, base), {}))


_TRAC_CLASSES: dict[type, type] = {}
