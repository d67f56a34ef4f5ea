"""``hare-tortoise``: Hare & Tortoise networks (Lee, Cho, Kim, Kim, Min, Choo & Lyle, ICML 2024).

The trained model is the *hare*. A *tortoise* copy of its parameters follows it as an
exponential moving average after every optimiser step,

    θ_T ← ρ·θ_T + (1 − ρ)·θ_H,

and the hare is periodically reset to the tortoise, θ_H ← θ_T: at the start of every task after
the first (``reset_at: task-start``, default; ``task-end`` resets after the task's last step
instead, ``never`` not at task boundaries) and/or every ``reset_every`` optimiser steps. The hare
learns fast; the tortoise integrates slowly; resetting the hare to the tortoise restores plasticity
without discarding what was learnt (the paper's analogy: hippocampus and neocortex).

What is measured: plasticlab measures the model, i.e. the hare. With the default the task-end
row is the hare after training on the task from the tortoise — its trainability, the quantity
the other methods are compared on. ``reset_at: task-end`` gives the same training but measures
the tortoise (the paper predicts with the tortoise, as we read it): at ρ = 0.999 and tasks of
tens of steps the tortoise has barely left the initialisation and scores near chance
(docs/methods.md). Epoch rows are the hare's training loss in both.

Departures and choices (the authors' code, github.com/dojeon-ai/hare-tortoise, was not available
to check): only parameters are averaged (norm running statistics stay the hare's); the
optimiser state is kept across a reset; the tortoise starts equal to the initial model.

Config: ``method: {name: hare-tortoise, momentum: 0.999, reset_every: 0, reset_at: task-start}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults


@registry.register(registry.METHODS, "hare-tortoise")
@dataclass
class HareTortoise(MethodDefaults):
    """EMA tortoise of the model's parameters; the model (hare) is reset to it periodically."""

    per_step = True
    busy: ClassVar[dict] = {"momentum": 0.5, "reset_every": 2}

    name: str = "hare-tortoise"
    momentum: float = field(default=0.999, metadata=bounds(ge=0, lt=1))
    """ρ: the tortoise keeps ρ of itself per step."""
    reset_every: int = field(default=0, metadata=bounds(ge=0))
    """Reset the hare to the tortoise every N optimiser steps (0 = only at task boundaries)."""
    reset_at: Literal["task-start", "task-end", "never"] = "task-start"
    """Also reset at every task boundary: before a task's first step (tasks ≥ 1; the task-end
    measures are the hare's), after its last step (they are the tortoise's), or never."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        self.hare_ = [p for p in ctx.model.parameters() if p.requires_grad]
        self.tortoise_ = [p.detach().clone() for p in self.hare_]

    @torch.no_grad()
    def reset_hare(self) -> None:
        """θ_H ← θ_T."""
        torch._foreach_copy_(self.hare_, self.tortoise_)

    @torch.no_grad()
    def after_step(self, step: int, x: torch.Tensor) -> None:
        torch._foreach_lerp_(self.tortoise_, [p.detach() for p in self.hare_], 1.0 - self.momentum)
        if self.reset_every and (step + 1) % self.reset_every == 0:
            self.reset_hare()

    def on_task_start(self, task: int) -> None:
        if self.reset_at == "task-start" and task > 0:
            self.reset_hare()

    def on_task_end(self, task: int) -> None:
        if self.reset_at == "task-end":
            self.reset_hare()

    def state_dict(self) -> dict:
        return {"tortoise": [t.clone() for t in self.tortoise_]}

    def load_state_dict(self, state: dict) -> None:
        for mine, saved in zip(self.tortoise_, state["tortoise"], strict=True):
            mine.copy_(saved)
