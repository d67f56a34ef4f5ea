"""``redo``: Recycling Dormant neurons (Sokar et al., ICML 2023).

After the run's optimiser steps N, 2N, 3N, … (N = ``every``, counted from 1 across tasks, so
N = steps per task fires once per task, after its last step; ``methods.base.due``) and, with
``at_task_end``, after each task's last step, each
unit layer's activations h of the step's training batch (captured by the loop) give the score

    s_i = mean_batch |h_i| / ( (1/H) Σ_j mean_batch |h_j| )        (H units in the layer)

(the mean also runs over spatial / sequence positions). Unit i is dormant when s_i ≤ τ. At most
⌊max_fraction·H⌋ units per layer are reset, lowest scores first. A reset unit gets fresh incoming
weights, bias and norm gain/bias (and BatchNorm running statistics) from their initialisation,
zero outgoing weights, and zero optimiser moments on all those entries
(``units.reinit_units(outgoing="zero")``); with Adam the reset entries also restart their bias
correction by default (``entry_step``: ``optim.per_entry_step: auto`` picks EntryAdam). Departure
from the reference code (google/dopamine ``labs/redo``): it zeroes the moments but keeps optax's
one global step count — ``optim.per_entry_step: false`` gives that behaviour. Config:
``method: {name: redo, every: 1000, tau: 0.1, max_fraction: 1.0, at_task_end: false}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import lowest_mask, require_units, unit_mean
from plasticlab.units import UnitLayer, reinit_units


def redo_scores(act: torch.Tensor, act_dim: int) -> torch.Tensor:
    """Normalised mean |activation| per unit, (units,): Sokar et al.'s s_i (eps 1e-9 in the mean)."""
    mean_abs = unit_mean(act.abs(), act_dim)
    return mean_abs / (mean_abs.mean() + 1e-9)


def dormant_mask(layer: UnitLayer, act: torch.Tensor, tau: float, max_fraction: float) -> torch.Tensor:
    """Units to reset: s_i ≤ τ, at most ⌊max_fraction·units⌋ of them, lowest scores first."""
    score = redo_scores(act, layer.act_dim)
    dormant = score <= tau
    if max_fraction >= 1.0:
        return dormant
    return lowest_mask(score, dormant, int(max_fraction * layer.count))


@registry.register(registry.METHODS, "redo")
@dataclass
class ReDo(MethodDefaults):
    """Reset τ-dormant units every N steps: fresh incoming weights, zero outgoing weights."""

    per_step = True
    entry_step = True
    busy: ClassVar[dict] = {"every": 2, "tau": 0.5, "at_task_end": True}

    name: str = "redo"
    every: int = field(default=1000, metadata=bounds(ge=1))
    """Check (and reset) after the run's optimiser steps N, 2N, 3N, … (counted from 1 across
    tasks; with N = steps per task, once per task after its last step)."""
    tau: float = field(default=0.1, metadata=bounds(ge=0))
    """Dormancy threshold on the normalised score."""
    max_fraction: float = field(default=1.0, metadata=bounds(ge=0, le=1))
    """At most this share of a layer's units is reset at once (lowest scores first)."""
    at_task_end: bool = False
    """Also reset after each task's last step (before its measurements)."""

    capture = True

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        require_units(ctx, "redo")

    def reset(self, *tag: object) -> None:
        """Reset the dormant units of every layer, from the latest captured activations."""
        ctx = self.ctx_
        g = ctx.generator("redo", *tag)
        masks = [None if a is None else dormant_mask(layer, a, self.tau, self.max_fraction)
                 for layer, a in zip(ctx.units, ctx.activations, strict=False)]
        for layer, mask in zip(ctx.units, masks, strict=False):
            if mask is not None:
                reinit_units(layer, mask, outgoing="zero", generator=g, optimizer=ctx.optimizer)

    def after_step(self, step: int, x: torch.Tensor) -> None:
        self.reset("step", step)

    def on_task_end(self, task: int) -> None:
        if self.at_task_end:
            self.reset("task_end", task)
