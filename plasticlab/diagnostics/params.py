"""Diagnostics of the parameters and their gradient: distance from init, gradient sparsity, duplicates.

Definitions (docs/diagnostics.md):

    param_distance     = ‖θ − θ₀‖₂ = sqrt(Σ_p ‖p − p₀‖²)     θ₀: the run's initial parameters
                         (Plasticine's "weight difference" without its 1/√#params; Yuan et al. 2025)
    grad_sparsity      = #{entries of ∂L/∂θ exactly 0} / #entries     (UPGD, Elsayed & Mahmood 2024:
                         1 − their ‖∂L/∂w‖₀ / #weights)
    duplicate_fraction = share of hidden units i with max_{j≠i} cos(v_i, v_j) ≥ 1 − ε, where v_i is
                         unit i's incoming vector (its weight rows and its own bias) and j runs over
                         the units of the same layer (cloned units, Joudaki et al. 2025)

All three return 0-d device tensors (no host sync).

Usage::

    init = initial_params(model)                     # at setup, before step 0
    names = list(init)
    distance([model.get_parameter(n) for n in names], [init[n] for n in names])   # ‖θ − θ₀‖₂
    duplicate_mask(units[0], eps=1e-3)               # (units,) bool
"""

from __future__ import annotations

import torch
from torch import nn

from plasticlab.units import Slice, UnitLayer


def initial_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """θ₀: a detached copy of every trainable parameter of ``model``, by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def distance(tensors: list[torch.Tensor], refs: list[torch.Tensor]) -> torch.Tensor:
    """sqrt(Σ_t ‖t − ref_t‖²) in float64 (0-d tensor; 0 for empty lists)."""
    if len(tensors) != len(refs):
        raise ValueError(f"{len(tensors)} tensors but {len(refs)} references")
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    for t, r in zip(tensors, refs, strict=True):
        if t.shape != r.shape:
            raise ValueError(f"shape {tuple(t.shape)} does not match its initial shape {tuple(r.shape)}")
    return torch.sqrt(sum((t.detach().double() - r.double()).pow(2).sum() for t, r in zip(tensors, refs, strict=True)))


def zero_fraction(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Share of entries that are exactly 0 over a list of tensors, in float64 (0-d tensor)."""
    total = sum(t.numel() for t in tensors)
    if total == 0:
        return torch.full((), float("nan"), dtype=torch.float64)
    return sum((t == 0).sum() for t in tensors).double() / total


def _in_vector(s: Slice) -> bool:
    """Part of a unit's incoming vector: weights, and the layer's own bias (drawn at random at init).

    Normalisation gains/biases and running statistics are constants at init ("ones"/"zeros"): the
    same for every unit, they would make every pair of units look alike.
    """
    return s.is_weight or s.init in ("uniform", "normal")


def unit_vectors(layer: UnitLayer) -> torch.Tensor:
    """(units, d): row i = unit i's incoming weight rows and bias, concatenated (detached)."""
    rows = [s.rows().detach() for s in layer.incoming if _in_vector(s)]
    if not rows:
        raise TypeError(f"unit layer {layer.name!r} has no incoming weight slices")
    return torch.cat([r.reshape(layer.count, -1) for r in rows], dim=1)


def duplicate_mask(layer: UnitLayer, eps: float) -> torch.Tensor:
    """Units with a near-copy in their layer: max_{j≠i} cos(v_i, v_j) ≥ 1 − eps. (units,) bool.

    One (units × units) matrix product in float64; a unit whose incoming vector is exactly 0 has no
    direction and is never a duplicate (nor anyone's). A 1e-12 slack lets exact copies count at eps = 0.
    """
    v = unit_vectors(layer).double()
    norm = torch.linalg.vector_norm(v, dim=1)
    u = v / norm.clamp_min(torch.finfo(v.dtype).tiny).unsqueeze(1)
    cos = u @ u.T
    valid = norm > 0
    keep = valid.unsqueeze(0) & valid.unsqueeze(1)
    keep.fill_diagonal_(False)
    cos = torch.where(keep, cos, torch.full_like(cos, -2.0))  # why: below any threshold 1 − eps ≥ 0
    return cos.amax(dim=1) >= 1.0 - eps - 1e-12
