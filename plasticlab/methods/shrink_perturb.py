"""``shrink-perturb``: Shrink & Perturb (Ash & Adams 2020), θ ← s·θ + σ·ε for every parameter.

ε is standard normal (``noise_dist: normal``) or a fresh draw from each parameter's own
initialisation distribution (``noise_dist: init``, Ash & Adams' "new initialisation" noise:
read from the unit map / ``head_slices()``, or from ``ctx.fresh_model`` for parameters those do
not describe). ``when``:

- ``task_start`` (default): before the first step of every task but the first, i.e. after each
  task once it has been measured (Liu & Mou's baseline: s = 0.9, σ = 0.01 after each task);
- ``task_end``: after a task's last step, before its measurements (they see the perturbed net);
- ``step``: after every ``every``-th optimiser step (Dohare et al.'s continual form).

Noise comes from ``ctx.generator("shrink-perturb", step_or_task)``, so resume is exact. The
optimiser state is kept (``reset_optimizer: true`` drops it: moments and step counts restart).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import whole_tensor_inits
from plasticlab.seeding import derived_seed


@registry.register(registry.METHODS, "shrink-perturb")
@dataclass
class ShrinkPerturb(MethodDefaults):
    """θ ← shrink·θ + noise·ε at the chosen times."""

    intervention = True
    busy: ClassVar[dict] = {"when": "step", "every": 2, "noise_dist": "init"}

    name: str = "shrink-perturb"
    shrink: float = field(default=0.9, metadata=bounds(ge=0, le=1))
    """s: multiplies every parameter."""
    noise: float = field(default=0.01, metadata=bounds(ge=0))
    """σ: scale of the added noise."""
    noise_dist: Literal["normal", "init"] = "normal"
    """ε ~ N(0, 1), or ε ~ the parameter's initialisation distribution."""
    when: Literal["task_start", "task_end", "step"] = "task_start"
    every: int = field(default=1, metadata=bounds(ge=1))
    """With ``when: step``: apply after every N-th optimiser step."""
    reset_optimizer: bool = False
    """Also drop the optimiser state of every parameter when applying."""

    @property
    def per_step(self) -> bool:
        """Only ``when: step`` acts inside steps; the task-boundary forms leave steps alone."""
        return self.when == "step"

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        self.params_ = [p for p in ctx.model.parameters() if p.requires_grad]
        self.inits_ = whole_tensor_inits(ctx.model, ctx.units) if self.noise_dist == "init" else None

    def noise_tensors(self, *tag: object) -> list[torch.Tensor]:
        """ε for every parameter, drawn from the generator derived from ``tag``."""
        g = self.ctx_.generator("shrink-perturb", *tag)
        if self.noise_dist == "normal":
            return [torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype) for p in self.params_]
        if self.inits_ is not None:
            return [self.inits_[id(p)].draw(g) for p in self.params_]
        fresh = self.ctx_.fresh_model(derived_seed(self.ctx_.seed, "shrink-perturb", *tag))
        fresh_params = [q for q in fresh.parameters() if q.requires_grad]
        return [q.detach().to(p.device, p.dtype) for p, q in zip(self.params_, fresh_params, strict=True)]

    @torch.no_grad()
    def apply(self, *tag: object) -> None:
        """θ ← s·θ + σ·ε for every parameter (optionally resetting optimiser state)."""
        for p, eps in zip(self.params_, self.noise_tensors(*tag), strict=True):
            p.mul_(self.shrink).add_(eps, alpha=self.noise)
            if self.reset_optimizer:
                self.ctx_.optimizer.state.pop(p, None)

    def after_step(self, step: int, x: torch.Tensor) -> None:
        if self.when == "step":
            self.apply("step", step)

    def on_task_start(self, task: int) -> None:
        if self.when == "task_start" and task > 0:
            self.apply("task_start", task)

    def on_task_end(self, task: int) -> None:
        if self.when == "task_end":
            self.apply("task_end", task)
