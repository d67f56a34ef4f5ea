"""``full-reset``: re-initialise the whole network at the start of every task after the first.

The from-scratch reference: parameters and buffers are copied in place from
``ctx.fresh_model(derived_seed(seed, "full-reset", task))`` and the whole optimiser state is
dropped, so each task trains a new network with a new optimiser. Config:
``method: {name: full-reset}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from plasticlab import registry
from plasticlab.methods.base import MethodDefaults
from plasticlab.seeding import derived_seed


@registry.register(registry.METHODS, "full-reset")
@dataclass
class FullReset(MethodDefaults):
    """A freshly initialised network and optimiser state at each task start but the first."""

    intervention = True

    name: str = "full-reset"

    @torch.no_grad()
    def on_task_start(self, task: int) -> None:
        if task == 0:
            return
        ctx = self.ctx_
        fresh = ctx.fresh_model(derived_seed(ctx.seed, "full-reset", task))
        ctx.model.load_state_dict(fresh.state_dict())  # copies in place: parameters keep their identity
        ctx.optimizer.state.clear()
