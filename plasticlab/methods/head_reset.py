"""``head-reset``: re-initialise the output layer at the start of every task after the first.

The head's parameters (``model.head_slices()``; for a model without one, the Linear whose output
is the model's output, with PyTorch's default init: ``unit_discovery.head_slices``) are re-drawn
from their initialisation with ``ctx.generator("head-reset", task)`` and their optimiser state is
dropped (moments and step count restart, as for a new optimiser). ``weights: zeros`` sets them to
zero instead (Dohare et al. 2024's continual ImageNet zeroes the output layer at every task start).
Config: ``method: {name: head-reset, weights: init}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from plasticlab import registry, unit_discovery
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import forget_optimizer_state
from plasticlab.registry import UserError


@registry.register(registry.METHODS, "head-reset")
@dataclass
class HeadReset(MethodDefaults):
    """Fresh output layer (and its optimiser state) at each task start but the first."""

    intervention = True

    name: str = "head-reset"
    weights: Literal["init", "zeros"] = "init"
    """Re-draw the head from its initialisation, or set it to zero."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        slices = unit_discovery.head_slices(ctx.model)
        if slices is None:
            raise UserError(f"method head-reset: model {type(ctx.model).__name__} has no head_slices() and its "
                            "output is not one Linear's output (define head_slices())")
        self.slices_ = slices

    @torch.no_grad()
    def on_task_start(self, task: int) -> None:
        if task == 0:
            return
        g = self.ctx_.generator("head-reset", task)
        for s in self.slices_:
            s.tensor.copy_(s.draw(g) if self.weights == "init" else torch.zeros_like(s.tensor))
        forget_optimizer_state(self.ctx_.optimizer, [s.tensor for s in self.slices_])
