"""``cbp``: Continual Backprop (Dohare et al., Nature 2024), generate-and-test unit replacement.

After every optimiser step, for each unit layer with activations h (B, units, …) of the step's
batch, per unit i (means over the batch and any spatial/sequence axes):

    age_i ← age_i + 1
    u_i   ← η·u_i + (1−η)·mean|h_i|·Σ_k |w_out_ki|      (utility: contribution)
    f_i   ← η·f_i + (1−η)·mean h_i                       (mean activation)
    û_i   = u_i / (1 − η^age_i)                          (bias-corrected utility)

Units with age > m (maturity threshold) are eligible. A per-layer accumulator gains
ρ·(#eligible units); its integer part n is removed and the n eligible units with the lowest û
are replaced (immature units never are). A replaced unit gets fresh incoming weights, bias and
norm gain/bias from their initialisation, zero outgoing weights, zero optimiser moments on those
entries, and u, f, age reset to 0. With ``bias_correction`` the next layer's bias first absorbs
the unit's mean contribution, next_bias += Σ_cols w_out[:, j] · f_j / (1 − η^age_j), so the
next layer's pre-activation keeps its mean. Everything is masks on the device (no host sync).
With Adam, replaced entries restart their bias correction by default (``entry_step``:
``optim.per_entry_step: auto`` picks EntryAdam, the per-entry step of the reference's AdamGnT);
``optim.per_entry_step: false`` keeps torch Adam's one step count per tensor.
Config: ``method: {name: cbp, replacement_rate: 1.0e-4, decay: 0.99, maturity: 100}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.methods.base import MethodContext, MethodDefaults
from plasticlab.methods.common import lowest_mask, require_units, unit_mean
from plasticlab.units import Slice, UnitLayer, reinit_units


def next_bias(model: nn.Module, out_weight: Slice) -> torch.Tensor | None:
    """The bias of the module that owns the outgoing weight (its dim 0 = the next layer's units).

    None when that module has no bias or the weight is not laid out as (next units, this unit, …),
    and for a unit read in several blocks (CReLU: relu(x) and relu(−x) have different means, and the
    unit map records only x), so no correction is made there.
    """
    for module in model.modules():
        if getattr(module, "weight", None) is out_weight.tensor:
            bias = getattr(module, "bias", None)
            if (bias is not None and out_weight.dim != 0 and out_weight.blocks == 1
                    and bias.shape == out_weight.tensor.shape[:1]):
                return bias
            return None
    return None


def outgoing_magnitude(layer: UnitLayer) -> torch.Tensor:
    """Σ_k |w_out_ki| per unit i over all outgoing weight slices: (units,)."""
    return sum(s.rows().abs().sum(dim=1) for s in layer.outgoing if s.is_weight)


@registry.register(registry.METHODS, "cbp")
@dataclass
class CBP(MethodDefaults):
    """Continual Backprop: replace the lowest-utility mature units at rate ρ per step."""

    per_step = True
    entry_step = True
    busy: ClassVar[dict] = {"replacement_rate": 0.2, "maturity": 2}

    name: str = "cbp"
    replacement_rate: float = field(default=1.0e-4, metadata=bounds(ge=0, le=1))
    """ρ: replaced units per eligible unit per step."""
    decay: float = field(default=0.99, metadata=bounds(ge=0, lt=1))
    """η: decay of the running utility and mean activation."""
    maturity: int = field(default=100, metadata=bounds(ge=0))
    """m: a unit is eligible once its age exceeds m steps."""
    bias_correction: bool = True
    """Move the replaced unit's mean contribution into the next layer's bias."""

    capture = True

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx
        require_units(ctx, "cbp")
        dev = ctx.device
        self.util_ = [torch.zeros(layer.count, device=dev) for layer in ctx.units]
        self.mean_act_ = [torch.zeros(layer.count, device=dev) for layer in ctx.units]
        self.age_ = [torch.zeros(layer.count, dtype=torch.int64, device=dev) for layer in ctx.units]
        self.acc_ = [torch.zeros((), dtype=torch.float64, device=dev) for _ in ctx.units]
        self.next_bias_ = [next_bias(ctx.model, layer.out_weight) if self.bias_correction else None
                           for layer in ctx.units]

    @torch.no_grad()
    def after_step(self, step: int, x: torch.Tensor) -> None:
        ctx = self.ctx_
        g = ctx.generator("cbp", step)
        eta = self.decay
        for i, (layer, act) in enumerate(zip(ctx.units, ctx.activations, strict=False)):
            if act is None:
                continue
            util, mean_act, age, acc = self.util_[i], self.mean_act_[i], self.age_[i], self.acc_[i]
            age += 1
            correction = 1.0 - torch.pow(eta, age.float())  # (units,) > 0 once age ≥ 1
            contribution = unit_mean(act.abs(), layer.act_dim) * outgoing_magnitude(layer)
            util.mul_(eta).add_(contribution, alpha=1 - eta)
            mean_act.mul_(eta).add_(unit_mean(act, layer.act_dim), alpha=1 - eta)
            mature = age > self.maturity
            acc += mature.sum().double() * self.replacement_rate
            n = torch.floor(acc)
            acc -= n
            replace = lowest_mask(util / correction, mature, n)
            bias = self.next_bias_[i]
            if bias is not None:
                self.correct_bias(layer, bias, torch.where(replace, mean_act / correction, 0.0))
            reinit_units(layer, replace, outgoing="zero", generator=g, optimizer=ctx.optimizer)
            keep = ~replace
            util.mul_(keep)
            mean_act.mul_(keep)
            age.mul_(keep)

    @staticmethod
    def correct_bias(layer: UnitLayer, bias: torch.Tensor, f: torch.Tensor) -> None:
        """bias += Σ over the outgoing entries of unit j of w_out · f_j (f zero for kept units)."""
        w = layer.out_weight
        cols = f.repeat_interleave(w.group) if w.group > 1 else f
        shape = [1] * w.tensor.ndim
        shape[w.dim] = cols.numel()
        contrib = w.tensor.float() * cols.view(shape)
        bias.add_(contrib.sum(dim=[d for d in range(w.tensor.ndim) if d != 0]).to(bias.dtype))

    def state_dict(self) -> dict:
        return {"util": [t.clone() for t in self.util_], "mean_act": [t.clone() for t in self.mean_act_],
                "age": [t.clone() for t in self.age_], "acc": [t.clone() for t in self.acc_]}

    def load_state_dict(self, state: dict) -> None:
        for name in ("util", "mean_act", "age", "acc"):
            for mine, saved in zip(getattr(self, f"{name}_"), state[name], strict=True):
                mine.copy_(saved)
