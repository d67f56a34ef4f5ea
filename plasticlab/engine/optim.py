"""Optimisers: one per run, kept across tasks (a method may reset its state).

SGD, Adam and AdamW use PyTorch's fused kernel (one pass over each parameter, on CPU and GPU);
the multi-tensor ``foreach`` path is the fallback where fused kernels are unavailable. Adam/AdamW
with a per-entry step count (``optim.per_entry_step``) is ``methods.entry_adam.EntryAdam``;
``upgd`` is ``engine.upgd.UPGD`` and ``trac`` is ``engine.trac`` over Adam (or EntryAdam).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from plasticlab.config import OptimConfig, RunConfig
from plasticlab.engine.trac import trac_over
from plasticlab.engine.upgd import UPGD
from plasticlab.methods.entry_adam import EntryAdam
from plasticlab.seeding import derived_seed

FUSED_DEVICES = ("cpu", "cuda", "xpu", "mps")
"""Device types with fused Adam/AdamW/SGD kernels in PyTorch ≥ 2.4."""

ENTRY_STEP_OPTIMIZERS = ("adam", "adamw", "trac")
"""Optimisers with Adam's bias-corrected moments, which ``per_entry_step`` applies to."""


def fast_kernel(params: list[torch.Tensor]) -> dict:
    """``{"fused": True}`` when every parameter lives on a device with fused optimiser kernels and is
    a float tensor; else ``{"foreach": True}``."""
    fused = bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)
    return {"fused": True} if fused else {"foreach": True}


def resolve_optim(cfg: RunConfig) -> None:
    """Replace ``optim.per_entry_step: auto`` by what the run uses, so config.yaml records it.

    ``auto`` → true when the optimiser has Adam's moments and some method of the run declares
    ``entry_step`` (it re-initialises entries and wants their bias correction to restart, as the
    reference implementations do), else false.
    """
    o = cfg.optim
    if o.per_entry_step == "auto":
        o.per_entry_step = o.name in ENTRY_STEP_OPTIMIZERS and any(getattr(m, "entry_step", False)
                                                                   for m in cfg.method)


def make_optimizer(model: nn.Module, cfg: OptimConfig, seed: int = 0) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names over the model's trainable parameters.

    SGD (with momentum), Adam (coupled L2 weight decay), AdamW (decoupled weight decay), UPGD
    (its noise from a generator seeded with ``(seed, "upgd")``) or TRAC over Adam. An unresolved
    ``per_entry_step: auto`` counts as false.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    fast = fast_kernel(params)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fast)
    if cfg.name == "upgd":
        device = params[0].device if params else torch.device("cpu")
        g = torch.Generator(device=device)
        g.manual_seed(derived_seed(seed, "upgd"))
        return UPGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, beta_utility=cfg.upgd_beta_utility,
                    sigma=cfg.upgd_sigma, generator=g)
    adam = {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps, "weight_decay": cfg.weight_decay}
    if cfg.per_entry_step is True:
        base, extra = EntryAdam, {"decoupled": cfg.name == "adamw"}
    else:
        base, extra = (torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam), fast
    if cfg.name == "trac":
        opt = trac_over(base)(params, **adam, **extra)
        opt.init_trac(cfg.trac_betas, cfg.trac_s_init, cfg.trac_eps)
        return opt
    return base(params, **adam, **extra)


# ---------------------------------------------------------------- the step


def mergeable(opt: torch.optim.Optimizer) -> bool:
    """torch's SGD, Adam or AdamW on fused kernels with plain options: its step can be one
    functional fused call, merged with other optimisers of equal hyper-parameters."""
    return type(opt) in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW) and all(
        g["fused"] and not (g.get("amsgrad") or g["maximize"] or g.get("capturable") or g["differentiable"]
                            or g.get("nesterov") or g.get("dampening")) and not torch.is_tensor(g["lr"])
        for g in opt.param_groups)


def built(opt: torch.optim.Optimizer, p: torch.Tensor) -> bool:
    """Whether ``p``'s optimiser state exists (else ``opt.step()`` builds it: step 0, or just dropped)."""
    st = opt.state.get(p, {})
    if isinstance(opt, torch.optim.SGD):
        return st.get("momentum_buffer") is not None or not any(g["momentum"] for g in opt.param_groups)
    return "exp_avg" in st


@torch.no_grad()
def step_optimizers(optimizers: list[torch.optim.Optimizer]) -> None:
    """Every optimiser's step, as one fused kernel call per kind and set of equal hyper-parameters.

    The fused kernels update each tensor from its own parameter, gradient and state, so one call
    over several optimisers' tensors is exactly each optimiser's own ``step()``: K Python calls and
    kernel launches become one (packed runs), and a single run skips ``Optimizer.step``'s wrapper
    (# why: its profiler record and state gathering cost ≈ 60 µs a step, 8% of a batch-1 step,
    benchmarks/batch1.py). An optimiser that is not ``mergeable``, or whose state is not yet
    built, calls ``step()``.
    """
    merged: dict[tuple, tuple[list, list, list, list, list]] = {}
    for opt in optimizers:
        if not mergeable(opt) or any(p.grad is not None and not built(opt, p)
                                     for g in opt.param_groups for p in g["params"]):
            opt.step()
            continue
        for g in opt.param_groups:
            if isinstance(opt, torch.optim.SGD):
                key = ("sgd", g["lr"], g["momentum"], g["weight_decay"])
            else:
                key = ("adam", g["lr"], tuple(g["betas"]), g["eps"], g["weight_decay"], g["decoupled_weight_decay"])
            ps, gs, a, b, steps = merged.setdefault(key, ([], [], [], [], []))
            for p in g["params"]:
                if p.grad is not None:
                    st = opt.state[p]
                    ps.append(p)
                    gs.append(p.grad)
                    if key[0] == "sgd":
                        a.append(st.get("momentum_buffer"))
                    else:
                        a.append(st["exp_avg"])
                        b.append(st["exp_avg_sq"])
                        steps.append(st["step"])
    for key, (ps, gs, a, b, steps) in merged.items():
        if key[0] == "sgd":
            _, lr, momentum, wd = key
            sgd(ps, gs, a, foreach=False, fused=True, weight_decay=wd, momentum=momentum, lr=lr, dampening=0.0,
                nesterov=False, maximize=False)
        else:
            _, lr, (b1, b2), eps, wd, decoupled = key
            adam(ps, gs, a, b, [], steps, foreach=False, fused=True, decoupled_weight_decay=decoupled,
                 amsgrad=False, beta1=b1, beta2=b2, lr=lr, weight_decay=wd, eps=eps, maximize=False)
