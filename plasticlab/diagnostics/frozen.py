"""Mutually frozen units and sparse weights (Zilly et al. 2021), with gradient evidence.

Definitions (docs/diagnostics.md). For a weight tensor W with initialisation std σ_W
(``Slice.init_std``) the threshold is θ_W = τ·σ_W. A hidden unit i is **mutually frozen** when

    max_j |W_in[i, j]| < θ_in   for every incoming weight tensor, and
    max_k |W_out[k, i]| < θ_out for every outgoing weight tensor,

i.e. *every* one of its weights is below threshold (max-abs, not RMS). Biases and norm
parameters are not part of the test. Over the distinct weight tensors E of the unit map:

    frozen_weight_fraction = |F| / |E|,   F = entries in a row/column of a frozen unit
    sparse_fraction        = |{e ∈ E : |e| < θ} \\ F| / |E|   (small but not frozen)

Since a frozen unit's entries are all below threshold, frozen_weight + sparse = the share of
entries below threshold. Gradient evidence: mean |∂L/∂w| over F, over the sparse entries and
over E (``grad_frozen``, ``grad_sparse``, ``grad_all``).
"""

from __future__ import annotations

import torch

from plasticlab.units import Slice, UnitLayer


def _weights(slices: list[Slice]) -> list[Slice]:
    return [s for s in slices if s.is_weight]


def frozen_mask(layer: UnitLayer, tau: float) -> torch.Tensor:
    """Which units of ``layer`` are mutually frozen: (units,) bool, on the weights' device.

    Unit i is frozen when max |w| < tau × init_std over each of its incoming and outgoing
    weight slices (biases and norm parameters excluded). No host sync.
    """
    slices = _weights(layer.incoming) + _weights(layer.outgoing)
    if not slices:
        raise TypeError(f"unit layer {layer.name!r} has no weight slices")
    mask = torch.ones(layer.count, dtype=torch.bool, device=slices[0].tensor.device)
    for s in slices:
        mask &= s.rows().detach().abs().amax(dim=1) < tau * s.init_std
    return mask


def _tensor_masks(layers: list[UnitLayer], masks: list[torch.Tensor], tau: float):
    """Per distinct weight tensor: (tensor, frozen-entry mask, below-threshold mask)."""
    out: dict[int, list] = {}
    for layer, m in zip(layers, masks, strict=True):
        for s in _weights(layer.incoming) + _weights(layer.outgoing):
            key = id(s.tensor)
            if key not in out:
                below = s.tensor.detach().abs() < tau * s.init_std
                out[key] = [s.tensor, torch.zeros_like(below), below]
            out[key][1] = out[key][1] | s.unit_mask(m)
    return out


def frozen_stats(layers: list[UnitLayer], tau: float,
                 grads: dict[int, torch.Tensor] | None = None) -> tuple[dict, dict[str, dict]]:
    """Frozen/sparse fractions overall and per layer, as 0-d device tensors (no host sync).

    Args:
        layers: the unit map (``plasticlab.units.build``).
        tau: threshold factor on each weight tensor's init std.
        grads: optional ``{id(weight tensor): gradient}``; adds ``grad_frozen``, ``grad_sparse``
            and ``grad_all`` (mean |grad| over each set; NaN when the set is empty).

    Returns:
        ``(overall, per_layer)``. Overall: ``frozen_fraction`` (share of all hidden units),
        ``frozen_weight_fraction`` and ``sparse_fraction`` (shares of the distinct weight
        entries E). Per layer: the same restricted to that layer's units and to the entries of
        its incoming and outgoing weight tensors (an entry counts as frozen if it belongs to
        any frozen unit, so both layers sharing a tensor see the same entries).
    """
    masks = [frozen_mask(layer, tau) for layer in layers]
    tensors = _tensor_masks(layers, masks, tau)

    def summary(keys: list[int], units: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        u = torch.cat(units)
        total = sum(tensors[k][0].numel() for k in keys)
        n_frozen = sum(tensors[k][1].sum() for k in keys)
        n_sparse = sum((tensors[k][2] & ~tensors[k][1]).sum() for k in keys)
        out = {"frozen_fraction": u.double().mean(),
               "frozen_weight_fraction": n_frozen.double() / total,
               "sparse_fraction": n_sparse.double() / total}
        if grads is not None:
            g = {k: grads[k].detach().abs() for k in keys}
            for name, sel in (("grad_frozen", lambda k: tensors[k][1]),
                              ("grad_sparse", lambda k: tensors[k][2] & ~tensors[k][1])):
                num = sum((g[k] * sel(k)).double().sum() for k in keys)
                den = sum(sel(k).sum() for k in keys)
                out[name] = num / den  # NaN when the set is empty
            out["grad_all"] = sum(g[k].double().sum() for k in keys) / total
        return out

    per_layer = {}
    for layer, m in zip(layers, masks, strict=True):
        keys = list(dict.fromkeys(id(s.tensor) for s in _weights(layer.incoming) + _weights(layer.outgoing)))
        per_layer[layer.name] = summary(keys, [m])
    return summary(list(tensors), masks), per_layer
