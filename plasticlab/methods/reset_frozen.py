"""``reset-frozen``: re-draw mutually frozen units at the start of chosen tasks (after Zilly et al. 2021).

A unit is *mutually frozen* when every entry of its incoming weights and of its outgoing weights
is small relative to that weight tensor's initialisation scale:

    max_k |w_in_ik| < τ·std_init(W_in)   and   max_k |w_out_ki| < τ·std_init(W_out)

(weight slices only: biases and norm parameters do not count; every weight slice on each side
must pass). This is ``plasticlab.diagnostics.frozen.frozen_mask``, shared with the
``frozen_fraction`` diagnostic. At the start of each chosen task all layers' frozen masks are
computed first, then each frozen unit gets fresh incoming weights, bias and norm gain/bias from
their initialisation and outgoing weights re-drawn (``outgoing: init``) or zeroed
(``outgoing: zero``); the optimiser moments of all those entries are zeroed, and with Adam their
bias correction restarts by default (``entry_step``; ``optim.per_entry_step: false`` keeps one
step count per tensor). Config:
``method: {name: reset-frozen, tau: 0.1, tasks: all_but_first, outgoing: init}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.diagnostics.frozen import frozen_mask
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import require_units
from plasticlab.units import reinit_units


@registry.register(registry.METHODS, "reset-frozen")
@dataclass
class ResetFrozen(MethodDefaults):
    """At the start of chosen tasks, re-initialise the mutually frozen units."""

    intervention = True
    entry_step = True
    busy: ClassVar[dict] = {"tau": 3.0, "tasks": "all"}

    name: str = "reset-frozen"
    tau: float = field(default=0.1, metadata=bounds(ge=0))
    """Frozen threshold as a fraction of each weight tensor's initialisation std."""
    tasks: Literal["all_but_first", "all"] | list[int] = field(default="all_but_first", metadata=bounds(ge=0))
    """Which task starts reset: every task after the first, all, or a list of task indices."""
    outgoing: Literal["init", "zero"] = "init"
    """Outgoing weights of a reset unit: re-drawn from their init, or zero."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        require_units(ctx, "reset-frozen")

    def chosen(self, task: int) -> bool:
        if self.tasks == "all":
            return True
        if self.tasks == "all_but_first":
            return task > 0
        return task in self.tasks

    @torch.no_grad()
    def on_task_start(self, task: int) -> None:
        if not self.chosen(task):
            return
        ctx = self.ctx_
        masks = [frozen_mask(layer, self.tau) for layer in ctx.units]
        g = ctx.generator("reset-frozen", task)
        for layer, mask in zip(ctx.units, masks, strict=True):
            reinit_units(layer, mask, outgoing=self.outgoing, generator=g, optimizer=ctx.optimizer)
