"""Ranks and norm of the penultimate features Φ (N × D), and parameter/gradient norms.

With singular values σ_1 ≥ … ≥ σ_r of Φ (docs/diagnostics.md):

    effective_rank = exp(−Σ_k p_k log p_k),  p_k = σ_k / Σ_j σ_j       (Roy & Vetterli 2007)
    srank_δ        = min{k : Σ_{i≤k} σ_i ≥ (1−δ) Σ_i σ_i},  δ = 0.01    (Kumar et al. 2020)
    stable_rank    = ‖Φ‖²_F / ‖Φ‖²_2 = Σ σ_i² / σ_1²                   (Rudelson & Vershynin 2007)

Φ is used as is (not centred). All three are 0 for Φ = 0. With φ_n the rows of Φ:

    feature_norm   = (1/N) Σ_n ‖φ_n‖₂                                  (Plasticine, Yuan et al. 2025)
"""

from __future__ import annotations

import torch

SRANK_DELTA = 0.01


def singular_values(phi: torch.Tensor) -> torch.Tensor:
    """Singular values of a 2-D matrix in float64, descending."""
    if phi.ndim != 2:
        raise ValueError(f"expected an (N, D) feature matrix, got shape {tuple(phi.shape)}")
    return torch.linalg.svdvals(phi.detach().double())


def effective_rank(sv: torch.Tensor) -> torch.Tensor:
    """Roy & Vetterli effective rank exp(H(p)), p = σ/Σσ, with 0·log 0 = 0 (0-d tensor)."""
    total = sv.sum()
    p = sv / total.clamp_min(torch.finfo(sv.dtype).tiny)
    entropy = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum()
    return torch.where(total > 0, entropy.exp(), torch.zeros_like(total))


def srank(sv: torch.Tensor, delta: float = SRANK_DELTA) -> torch.Tensor:
    """Kumar et al. srank: the fewest top singular values holding (1−δ) of Σσ (0-d tensor)."""
    total = sv.sum()
    cum = sv.sort(descending=True).values.cumsum(0)
    # why: the 1e-12 slack keeps an exact boundary (e.g. σ = [99, 1]) from being lost to rounding.
    k = (cum < (1.0 - delta - 1e-12) * total).sum() + 1
    return torch.where(total > 0, k.to(sv.dtype), torch.zeros_like(total))


def stable_rank(sv: torch.Tensor) -> torch.Tensor:
    """‖Φ‖²_F / ‖Φ‖²_2 = Σσ² / max σ² (0-d tensor)."""
    top = sv.max() ** 2
    ratio = (sv**2).sum() / top.clamp_min(torch.finfo(sv.dtype).tiny)
    return torch.where(top > 0, ratio, torch.zeros_like(top))


def feature_norm(phi: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the Euclidean row norm, (1/N) Σ_n ‖φ_n‖₂, in float64 (0-d tensor)."""
    if phi.ndim != 2:
        raise ValueError(f"expected an (N, D) feature matrix, got shape {tuple(phi.shape)}")
    return torch.linalg.vector_norm(phi.detach().double(), dim=1).mean()


def l2_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """sqrt(Σ_t ‖t‖²) over a list of tensors, in float64 (0-d tensor)."""
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    return torch.sqrt(sum(t.detach().double().pow(2).sum() for t in tensors))
