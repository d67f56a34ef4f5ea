"""Plasticity diagnostics on a fixed probe batch: one entry point, ``measure``.

Every definition (formula, source, departures) is in docs/diagnostics.md and in the docstring
of the module that computes it: ``frozen`` (mutually frozen units, sparse weights, gradient
evidence), ``sensitivity`` (input sensitivity), ``activity`` (dormant, dead, active), ``rank``
(effective rank, srank, stable rank, feature norm, norms), ``params`` (distance from init,
gradient sparsity, duplicate units), ``sharpness`` (top Hessian eigenvalue, off by default). Two
task-end diagnostics that rebuild or train other tasks, also off by default, are called by the
engine at task ends: ``forgetting`` (accuracy on earlier tasks) and ``probe`` (plasticity probe).
Diagnostics read the model and its unit map and never change them.

Usage::

    units = plasticlab.units.build(model)
    idx = probe_indices(seed, task.n_train, cfg.diagnostics.probe_size, device)
    init = initial_params(model)  # θ₀, before training (for param_distance)
    row = measure(model, units, task.x_train[idx], task.y_train[idx], family.loss, cfg.diagnostics, init=init)
    row["frozen_fraction"], row["layers"]["hidden0"]["dormant_fraction"]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from plasticlab import unit_discovery
from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics.activity import capture, dead_mask, dormant_mask
from plasticlab.diagnostics.frozen import frozen_mask, frozen_stats
from plasticlab.diagnostics.params import distance, duplicate_mask, initial_params, zero_fraction
from plasticlab.diagnostics.rank import effective_rank, feature_norm, l2_norm, singular_values, srank, stable_rank
from plasticlab.diagnostics.sensitivity import input_sensitivity
from plasticlab.diagnostics.sharpness import top_hessian_eigenvalue
from plasticlab.seeding import derived_seed, generator
from plasticlab.units import UnitLayer

__all__ = ["METRICS", "OPTIONAL", "frozen_mask", "initial_params", "measure", "probe_indices"]

METRICS = ("frozen_fraction", "frozen_weight_fraction", "sparse_fraction", "input_sensitivity",
           "dormant_fraction", "dead_fraction", "active_fraction", "duplicate_fraction",
           "effective_rank", "srank", "stable_rank", "feature_norm",
           "weight_norm", "param_distance", "grad_norm", "grad_sparsity", "grad_frozen", "grad_sparse", "grad_all")
"""Overall keys of ``measure`` (grad_frozen, grad_sparse and grad_all only when ``cfg.gradients``)."""

OPTIONAL = {"sharpness": "sharpness",
            "past_task_acc": "past_tasks", "mean_past_acc": "past_tasks",
            "probe_acc": "probe_steps", "probe_fresh_acc": "probe_steps", "probe_gap": "probe_steps",
            "online_plasticity": "online_every"}
"""Keys that are off by default, with the ``diagnostics`` config key that switches each on (> 0).
``sharpness`` is a key of ``measure`` (so of every diagnostics row); the others are added to
``task_end`` rows only (``engine.loop.measure_task``): ``past_task_acc`` is a mapping
{"j": accuracy} (``diagnostics.forgetting``), the probe keys come from ``diagnostics.probe``."""

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple]


def probe_indices(seed: int, n_train: int, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The probe batch: the first ``min(size, n_train)`` of a permutation drawn from (seed, "probe").

    The same indices serve every task (example i of every task comes from base example i).
    """
    return torch.randperm(n_train, generator=generator(seed, "probe"))[:size].to(device)


def measure(model: nn.Module, units: list[UnitLayer], probe_x: torch.Tensor, probe_y: torch.Tensor,
            loss_fn: LossFn, cfg: DiagnosticsConfig, *, generator: torch.Generator | None = None,
            init: dict[str, torch.Tensor] | None = None) -> dict:
    """All diagnostics of ``model`` on the probe batch, as Python floats.

    Runs in eval mode, then restores the model's mode; leaves parameters, their ``.grad``,
    buffers (BatchNorm running statistics) and the unit map untouched. One host sync at the end.

    Args:
        model: provides ``features(x)`` (penultimate features; without it, the input of the Linear
            producing the output, ``unit_discovery.features``); a token model may provide
            ``sensitivity_inputs(x, y) -> (z, fn)`` with ``fn(z)`` = outputs, so that input
            sensitivity is taken with respect to the embeddings z.
        units: the model's unit map (``plasticlab.units.build``); may be empty (unit metrics None).
        probe_x, probe_y: the probe batch.
        loss_fn: ``loss_fn(model, x, y) -> (loss, correct, n)``, the task loss.
        cfg: thresholds and options (``plasticlab.config.DiagnosticsConfig``).
        generator: draws the projection vectors; default a fixed seed on the probe's device.
        init: θ₀, the run's initial trainable parameters by name (``initial_params(model)`` before
            step 0); ``param_distance`` is None without it.

    Returns:
        ``{metric: float | None, ..., "layers": {layer_name: {metric: float | None}}}`` with the
        overall keys of ``METRICS`` (and ``sharpness`` when ``cfg.sharpness`` > 0); None where a
        value is undefined (e.g. ``grad_frozen`` with no frozen weight, ``param_distance`` without
        ``init``).
    Raises:
        ValueError: ``init`` lacks a trainable parameter of ``model`` or has another shape.
    """
    was_training = model.training
    model.eval()
    try:
        overall, layers = _measure(model, units, probe_x, probe_y, loss_fn, cfg, generator, init)
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


def _measure(model, units, x, y, loss_fn, cfg, gen, init):
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
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

    nan = torch.full((), float("nan"), dtype=torch.float64, device=x.device)
    if units:
        overall, layers = frozen_stats(units, cfg.frozen_tau, by_id if cfg.gradients else None)
    else:  # why: a model without unit layers (unit_discovery) has no unit metrics: None, not an error
        keys = ["frozen_fraction", "frozen_weight_fraction", "sparse_fraction"]
        overall, layers = dict.fromkeys(keys + (["grad_frozen", "grad_sparse", "grad_all"] if cfg.gradients else []),
                                        nan), {}

    init_of = _init_by_id(named, init)
    n_units = sum(layer.count for layer in units)
    n_dormant = n_dead = n_active = n_dup = torch.zeros((), dtype=torch.float64, device=x.device)
    for layer, st in zip(units, acts, strict=True):
        dormant, dead = dormant_mask(st.mean_abs(), cfg.dormant_tau), dead_mask(st.max_abs)
        active, dup = st.active_share(), duplicate_mask(layer, cfg.duplicate_eps)
        n_dormant, n_dead = n_dormant + dormant.sum(), n_dead + dead.sum()
        n_active, n_dup = n_active + active.sum(), n_dup + dup.sum()
        w = weights[layer.name]
        layers[layer.name].update(
            dormant_fraction=dormant.double().mean(), dead_fraction=dead.double().mean(),
            active_fraction=active.mean(), duplicate_fraction=dup.double().mean(),
            weight_norm=l2_norm(w),
            param_distance=_distance(w, init_of, x.device),
            grad_norm=l2_norm([by_id[id(t)] for t in w if id(t) in by_id]))
    overall["dormant_fraction"] = n_dormant.double() / n_units
    overall["dead_fraction"] = n_dead.double() / n_units
    overall["active_fraction"] = n_active / n_units
    overall["duplicate_fraction"] = n_dup.double() / n_units

    with torch.no_grad():
        phi = unit_discovery.features(model, x)
    if phi is None:  # why: no features() and no single Linear head to read them from
        overall.update(dict.fromkeys(("effective_rank", "srank", "stable_rank", "feature_norm"), nan))
    else:
        phi = phi.reshape(-1, phi.shape[-1])  # why: token features (B, L, D) → rows are positions
        sv = singular_values(phi)
        overall.update(effective_rank=effective_rank(sv), srank=srank(sv), stable_rank=stable_rank(sv),
                       feature_norm=feature_norm(phi))
    overall.update(weight_norm=l2_norm(list(model.parameters())), param_distance=_distance(params, init_of, x.device),
                   grad_norm=l2_norm(grads), grad_sparsity=zero_fraction(grads))

    embed = getattr(model, "sensitivity_inputs", None)
    z, fn = embed(x, y) if embed is not None else (x, model)
    if gen is None:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(derived_seed("diagnostics", "projections"))
    overall["input_sensitivity"] = input_sensitivity(fn, z, mode=cfg.sensitivity, projections=cfg.projections,
                                                     generator=gen)
    if cfg.sharpness:
        overall["sharpness"] = top_hessian_eigenvalue(lambda: loss_fn(model, x, y)[0], params, cfg.sharpness)
    return overall, layers


def _init_by_id(named: list[tuple[str, torch.Tensor]], init: dict[str, torch.Tensor] | None) -> dict | None:
    """``{id(parameter): θ₀ of it}`` over the trainable parameters, or None without ``init``."""
    if init is None:
        return None
    missing = [n for n, _ in named if n not in init]
    if missing:
        raise ValueError(f"init has no initial value for parameter(s) {', '.join(missing[:3])}"
                         f"{' …' if len(missing) > 3 else ''} (build it with initial_params(model) before step 0)")
    return {id(p): init[n] for n, p in named}


def _distance(tensors: list[torch.Tensor], init_of: dict | None, device: torch.device) -> torch.Tensor:
    """‖θ − θ₀‖₂ over ``tensors`` (those that are trainable parameters); NaN (→ None) without θ₀."""
    if init_of is None:
        return torch.full((), float("nan"), dtype=torch.float64, device=device)
    kept = [t for t in tensors if id(t) in init_of]
    if not kept:
        return torch.zeros((), dtype=torch.float64, device=device)
    return distance(kept, [init_of[id(t)] for t in kept])
