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

**Under BatchNorm** (plasticlab's extension; Zilly et al. define the test for plain layers). A
unit whose incoming side holds a BatchNorm (a per-unit gain γ and running statistics) outputs
γ_i·â_i + β_i with â_i of unit variance whatever the scale of W_in[i], so small incoming weights
do not silence it; its signal scale is |γ_i|. And a consumer that is itself batch-normalised
ignores the scale of each of its rows. The unit is then frozen when

    |γ_i| < τ  (γ's init value is 1)   and
    max_j |W_out[k, i, …]| / rms(W_out[k]) < τ  for every output k of every outgoing weight tensor,

i.e. its gain is small and its outgoing weights are small *relative to the rest of the row that
reads them* (rms over all of row k's entries; a row that is all zero counts as small). The
mutual-gradient argument carries over: ∂L/∂γ_i ∝ the unit's outgoing weights relative to the
normalised consumer's row, and their gradient ∝ the variation of the unit's output, ∝ γ_i. The
test is invariant to rescaling any incoming or outgoing weight tensor; at initialisation the row
rms ≈ σ_out, so it agrees with the plain test there. In BN layers frozen entries need not be
below θ, so frozen_weight + sparse may exceed the share below threshold. A BatchNorm without
running statistics (``track_running_stats=False``) is not recognised and gets the plain test.
"""

from __future__ import annotations

import dataclasses

import torch

from plasticlab.units import Slice, UnitLayer


def _weights(slices: list[Slice]) -> list[Slice]:
    return [s for s in slices if s.is_weight]


def batchnorm_gain(layer: UnitLayer) -> Slice | None:
    """The per-unit gain γ of a BatchNorm on ``layer``'s incoming side, or None.

    Recognised from the unit map alone: the incoming side holds a trainable constant-``ones``
    slice (the gain) and a non-trainable one (the running variance). LayerNorm and GroupNorm
    keep no running statistics, so they are not matched.
    """
    ones = [s for s in layer.incoming if not s.is_weight and s.init == "ones"]
    gain = next((s for s in ones if s.tensor.requires_grad), None)
    has_stats = any(not s.tensor.requires_grad for s in ones)
    return gain if gain is not None and has_stats else None


def _row_relative(s: Slice) -> Slice:
    """``s`` with |W| / rms of its row (output index along dim 0) instead of W; 0 where the row is all 0."""
    w = s.tensor.detach().abs()
    rms = w.pow(2).flatten(1).mean(dim=1).sqrt().view(-1, *([1] * (w.ndim - 1)))
    return dataclasses.replace(s, tensor=torch.where(rms > 0, w / rms.clamp_min(torch.finfo(w.dtype).tiny), 0.0))


def frozen_mask(layer: UnitLayer, tau: float) -> torch.Tensor:
    """Which units of ``layer`` are mutually frozen: (units,) bool, on the weights' device.

    Plain layers: unit i is frozen when max |w| < tau × init_std over each of its incoming and
    outgoing weight slices (biases and norm parameters excluded). Batch-normalised layers
    (``batchnorm_gain``): |γ_i| < tau and, for each outgoing weight slice, max |w| / rms(its
    consumer row) < tau (module docstring). No host sync.
    """
    gain = batchnorm_gain(layer)
    outgoing = _weights(layer.outgoing)
    if gain is None:
        tests = [(s, tau * s.init_std) for s in _weights(layer.incoming) + outgoing]
    else:
        if any(s.dim == 0 for s in outgoing):
            raise TypeError(f"unit layer {layer.name!r}: an outgoing weight slice indexes units along dim 0")
        tests = [(gain, tau), *((_row_relative(s), tau) for s in outgoing)]
    if not tests:
        raise TypeError(f"unit layer {layer.name!r} has no weight slices")
    mask = torch.ones(layer.count, dtype=torch.bool, device=tests[0][0].tensor.device)
    for s, theta in tests:
        mask &= s.rows().detach().abs().amax(dim=1) < theta
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
