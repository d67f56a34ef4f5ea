"""Optimisers: one per run, kept across tasks (a method may reset its state).

Every optimiser uses PyTorch's fused kernel (one pass over each parameter, on CPU and GPU);
the multi-tensor ``foreach`` path is the fallback where fused kernels are unavailable.
"""

from __future__ import annotations

import torch
from torch import nn

from plasticlab.config import OptimConfig

FUSED_DEVICES = ("cpu", "cuda", "xpu", "mps")
"""Device types with fused Adam/AdamW/SGD kernels in PyTorch ≥ 2.4."""


def fast_kernel(params: list[torch.Tensor]) -> dict:
    """``{"fused": True}`` when every parameter lives on a device with fused optimiser kernels and is
    a float tensor; else ``{"foreach": True}``."""
    fused = bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)
    return {"fused": True} if fused else {"foreach": True}


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam (coupled L2 weight decay) or AdamW (decoupled weight decay)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fast = fast_kernel(params)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fast)
    if cfg.per_entry_step:
        from plasticlab.methods.entry_adam import EntryAdam

        return EntryAdam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
                         decoupled=cfg.name == "adamw")
    cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, **fast)
