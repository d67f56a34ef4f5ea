"""Optimisers: one per run, kept across tasks (a method may reset its state)."""

from __future__ import annotations

import torch
from torch import nn

from plasticlab.config import OptimConfig


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam (coupled L2 weight decay) or AdamW (decoupled weight decay)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fast = {"foreach": True}
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fast)
    if cfg.per_entry_step:
        from plasticlab.methods.entry_adam import EntryAdam

        return EntryAdam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
                         decoupled=cfg.name == "adamw")
    cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, **fast)
