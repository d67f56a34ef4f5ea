"""Plasticity diagnostics on a fixed probe batch: one entry point, ``measure``.

Every definition (formula, source, departures) is in docs/diagnostics.md and in the docstring
of the module that computes it: ``frozen`` (mutually frozen units, sparse weights, gradient
evidence), ``sensitivity`` (input sensitivity), ``activity`` (dormant, dead), ``rank``
(effective rank, srank, stable rank, norms). Diagnostics read the model and its unit map and
never change them.

Usage::

    units = plasticlab.units.build(model)
    idx = probe_indices(seed, task.n_train, cfg.diagnostics.probe_size, device)
    row = measure(model, units, task.x_train[idx], task.y_train[idx], family.loss, cfg.diagnostics)
    row["frozen_fraction"], row["layers"]["hidden0"]["dormant_fraction"]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics.activity import capture, dead_mask, dormant_mask
from plasticlab.diagnostics.frozen import frozen_mask, frozen_stats
from plasticlab.diagnostics.rank import effective_rank, l2_norm, singular_values, srank, stable_rank
from plasticlab.diagnostics.sensitivity import input_sensitivity
from plasticlab.seeding import derived_seed, generator
from plasticlab.units import UnitLayer

__all__ = ["METRICS", "frozen_mask", "measure", "probe_indices"]

METRICS = ("frozen_fraction", "frozen_weight_fraction", "sparse_fraction", "input_sensitivity",
           "dormant_fraction", "dead_fraction", "effective_rank", "srank", "stable_rank",
           "weight_norm", "grad_norm", "grad_frozen", "grad_sparse", "grad_all")
"""Overall keys of ``measure`` (the grad_* three only when ``cfg.gradients``)."""

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple]


def probe_indices(seed: int, n_train: int, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The probe batch: the first ``min(size, n_train)`` of a permutation drawn from (seed, "probe").

    The same indices serve every task (example i of every task comes from base example i).
    """
    return torch.randperm(n_train, generator=generator(seed, "probe"))[:size].to(device)


def measure(model: nn.Module, units: list[UnitLayer], probe_x: torch.Tensor, probe_y: torch.Tensor,
            loss_fn: LossFn, cfg: DiagnosticsConfig, *, generator: torch.Generator | None = None) -> dict:
    """All diagnostics of ``model`` on the probe batch, as Python floats.

    Runs in eval mode, then restores the model's mode; leaves parameters, their ``.grad``,
    buffers (BatchNorm running statistics) and the unit map untouched. One host sync at the end.

    Args:
        model: provides ``features(x)`` (penultimate features); a token model may provide
            ``sensitivity_inputs(x, y) -> (z, fn)`` with ``fn(z)`` = outputs, so that input
            sensitivity is taken with respect to the embeddings z.
        units: the model's unit map.
        probe_x, probe_y: the probe batch.
        loss_fn: ``loss_fn(model, x, y) -> (loss, correct, n)``, the task loss.
        cfg: thresholds and options (``plasticlab.config.DiagnosticsConfig``).
        generator: draws the projection vectors; default a fixed seed on the probe's device.

    Returns:
        ``{metric: float | None, ..., "layers": {layer_name: {metric: float | None}}}`` with the
        overall keys of ``METRICS``; None where a value is undefined (e.g. ``grad_frozen`` with
        no frozen weight).
    """
    was_training = model.training
    model.eval()
    try:
        overall, layers = _measure(model, units, probe_x, probe_y, loss_fn, cfg, generator)
    finally:
        model.train(was_training)
    keys = [(None, k) for k in overall] + [(n, k) for n, d in layers.items() for k in d]
    vals = [overall[k] if n is None else layers[n][k] for n, k in keys]
    got = torch.stack([v.detach().double().reshape(()) for v in vals]).tolist()  # SYNC: once per measurement
    out: dict = {}
    per: dict = {name: {} for name in layers}
    for (n, k), v in zip(keys, got, strict=True):
        (out if n is None else per[n])[k] = None if math.isnan(v) else v
    out["layers"] = per
    return out


def _measure(model, units, x, y, loss_fn, cfg, gen):
    params = [p for p in model.parameters() if p.requires_grad]
    with capture(units) as acts:
        loss = loss_fn(model, x, y)[0]
    grads = torch.autograd.grad(loss, params, allow_unused=True)  # why: never touches p.grad
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    by_id = {id(p): g for p, g in zip(params, grads, strict=True)}
    weights = {layer.name: [s.tensor for s in layer.incoming if s.is_weight] for layer in units}
    if cfg.gradients:
        for layer in units:
            for s in layer.incoming + layer.outgoing:
                if s.is_weight and id(s.tensor) not in by_id:
                    raise TypeError(f"unit layer {layer.name!r}: a weight slice is not a trainable parameter")

    overall, layers = frozen_stats(units, cfg.frozen_tau, by_id if cfg.gradients else None)

    n_units = sum(layer.count for layer in units)
    n_dormant, n_dead = 0, 0
    for layer, st in zip(units, acts, strict=True):
        dormant, dead = dormant_mask(st.mean_abs(), cfg.dormant_tau), dead_mask(st.max_abs)
        n_dormant, n_dead = n_dormant + dormant.sum(), n_dead + dead.sum()
        layers[layer.name].update(
            dormant_fraction=dormant.double().mean(), dead_fraction=dead.double().mean(),
            weight_norm=l2_norm(weights[layer.name]),
            grad_norm=l2_norm([by_id[id(t)] for t in weights[layer.name] if id(t) in by_id]))
    overall["dormant_fraction"] = n_dormant.double() / n_units
    overall["dead_fraction"] = n_dead.double() / n_units

    with torch.no_grad():
        phi = model.features(x)
    sv = singular_values(phi.reshape(-1, phi.shape[-1]))  # why: token features (B, L, D) → rows are positions
    overall.update(effective_rank=effective_rank(sv), srank=srank(sv), stable_rank=stable_rank(sv),
                   weight_norm=l2_norm(list(model.parameters())), grad_norm=l2_norm(grads))

    embed = getattr(model, "sensitivity_inputs", None)
    z, fn = embed(x, y) if embed is not None else (x, model)
    if gen is None:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(derived_seed("diagnostics", "projections"))
    overall["input_sensitivity"] = input_sensitivity(fn, z, mode=cfg.sensitivity, projections=cfg.projections,
                                                     generator=gen)
    return overall, layers
