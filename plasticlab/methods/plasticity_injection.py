"""``plasticity-injection``: Plasticity Injection (Nikishin et al., NeurIPS 2023).

Authors: Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney & Barreto. At an injection the head h_θ
is frozen and a freshly initialised head h_θ' is added together with a frozen twin of it,
h_θ'⁻ (θ'⁻ = θ' at injection):

    h(x) = h_θ(x) + h_θ'(x) − stopgrad(h_θ'⁻(x)),

so the output is unchanged at the moment of injection, and from then on only θ' (and the rest
of the network) learns. Injections happen at the start of every ``every_tasks``-th task
(tasks ≥ 1); a later injection freezes the whole current head the same way.

How plasticlab holds it: the head is a Linear, so the frozen part h_θ − h_θ'⁻ is one frozen
affine map x ↦ W_f x + b_f. The head's own parameters become θ' (re-drawn in place from the
head's initialisation, ``ctx.generator("plasticity-injection", task)``, optimiser state dropped),
and W_f, b_f are buffers of the head module, added to its output by a forward hook:

    W_f ← W_f + W − W',   b_f ← b_f + b − b',   (W, b) ← (W', b')

— the same function and the same gradients as the three-head form, with no extra parameters in
the optimiser, and the buffers are part of the model's state dict (resume-exact). The unit map
gains W_f as an outgoing slice of the last hidden layer, so a unit reset there (ReDo, CBP,
reset-frozen) also clears the unit's outgoing weights in the frozen part.

Departures: Nikishin et al. inject into the last layers after the encoder of their Atari agents
(a multi-layer head), once, mid-training; plasticlab injects into the output layer, at task
starts. The Plasticine reference (``plasticine_plasticity_injection``) does not freeze the
old head; the paper (and plasticlab) do. Not packable (the batched MLP has no hook), and the
buffers keep runs off the compiled whole-step graph.

Config: ``method: {name: plasticity-injection, every_tasks: 1}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from plasticlab import registry, unit_discovery
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import forget_optimizer_state
from plasticlab.registry import UserError
from plasticlab.units import Slice


def add_frozen(module: nn.Linear, args: tuple, out: torch.Tensor) -> torch.Tensor:
    """Forward hook: the head's output plus the frozen affine map of earlier injections."""
    return out + F.linear(args[0], module.injected_weight, module.injected_bias)


def injectable_head(model: nn.Module) -> nn.Linear:
    """The Linear module holding the head's weight (``unit_discovery.head_slices``), or a UserError."""
    slices = unit_discovery.head_slices(model)
    weight = slices[0].tensor if slices else None
    found = next((m for m in model.modules() if isinstance(m, nn.Linear) and m.weight is weight), None)
    if found is None or found.bias is None:
        raise UserError(f"method plasticity-injection: model {type(model).__name__} has no Linear output layer "
                        "with a bias (head_slices()); use mlp, cnn or another model with a Linear head")
    return found


@registry.register(registry.METHODS, "plasticity-injection")
@dataclass
class PlasticityInjection(MethodDefaults):
    """Freeze the head and add a fresh one minus its frozen twin at the start of chosen tasks."""

    packable = False

    name: str = "plasticity-injection"
    every_tasks: int = field(default=1, metadata=bounds(ge=1))
    """Inject at the start of task t ≥ 1 when t is a multiple of this."""

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        self.head_ = injectable_head(ctx.model)
        if not hasattr(self.head_, "injected_weight"):
            self.head_.register_buffer("injected_weight", torch.zeros_like(self.head_.weight.detach()))
            self.head_.register_buffer("injected_bias", torch.zeros_like(self.head_.bias.detach()))
            self.head_.register_forward_hook(add_frozen)
        self.slices_ = unit_discovery.head_slices(ctx.model)
        frozen = Slice(self.head_.injected_weight, 1, "zeros", is_weight=False)
        for layer in ctx.units:
            mine = [s.tensor for s in layer.outgoing]
            if any(t is self.head_.weight for t in mine) and not any(t is frozen.tensor for t in mine):
                layer.outgoing.append(frozen)

    @torch.no_grad()
    def inject(self, task: int) -> None:
        """Fold the current head into the frozen map and re-draw the trainable head (output unchanged)."""
        g = self.ctx_.generator("plasticity-injection", task)
        head = self.head_
        for live, frozen in ((head.weight, head.injected_weight), (head.bias, head.injected_bias)):
            s = next(s for s in self.slices_ if s.tensor is live)
            fresh = s.draw(g)
            frozen.add_(live - fresh)
            live.copy_(fresh)
        forget_optimizer_state(self.ctx_.optimizer, [head.weight, head.bias])

    def on_task_start(self, task: int) -> None:
        if task >= 1 and task % self.every_tasks == 0:
            self.inject(task)
