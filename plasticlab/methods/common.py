"""Free functions shared by several methods: parameter groups, masked top-k choice, state resets.

Everything here runs on the device without host syncs unless its docstring says otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

from plasticlab import unit_discovery, units
from plasticlab.methods.base import MethodContext
from plasticlab.registry import UserError
from plasticlab.units import Slice, UnitLayer


def require_units(ctx: MethodContext, method: str) -> None:
    """Raise UserError when the model has no hidden units for a unit-based method."""
    if not ctx.units:
        raise UserError(f"method {method}: model {type(ctx.model).__name__} has no unit layers "
                        f"({units.why_empty(ctx.model)})")


def is_norm(module: nn.Module) -> bool:
    """LayerNorm/BatchNorm/GroupNorm/RMSNorm and look-alikes (T5LayerNorm): by class name."""
    return "norm" in type(module).__name__.lower()


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(weights, others): ``others`` are biases and every parameter of a norm module."""
    weights: list[nn.Parameter] = []
    others: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            (others if is_norm(module) or name.endswith("bias") else weights).append(p)
    return weights, others


def penalised_parameters(model: nn.Module, exclude_bias_norm: bool) -> list[nn.Parameter]:
    """All trainable parameters, or only the non-bias, non-norm ones."""
    weights, others = split_parameters(model)
    params = weights if exclude_bias_norm else weights + others
    return [p for p in params if p.requires_grad]


def grads_of(params: list[nn.Parameter]) -> list[torch.Tensor]:
    """Each parameter's ``.grad``; a missing one (parameter unused by the loss) becomes zeros."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return [p.grad for p in params]


def weight_matrices(model: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters with ≥ 2 dims (linear weights, conv kernels, embeddings)."""
    return [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]


def lowest_mask(score: torch.Tensor, eligible: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Bool mask of the ``k`` eligible entries with the lowest ``score`` (ties: lower index first).

    ``k`` may be a Python int or a 0-dim device tensor; fewer than ``k`` are chosen when fewer are
    eligible. No host sync: a stable sort and a rank comparison.
    """
    s = torch.where(eligible, score, torch.full_like(score, float("inf")))
    order = torch.argsort(s, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(0, order, torch.arange(order.numel(), device=order.device))
    return eligible & (rank < k)


def unit_mean(a: torch.Tensor, act_dim: int) -> torch.Tensor:
    """Mean of an activation (B, units, …) / (B, L, units) over every axis but ``act_dim``: (units,)."""
    dims = [d for d in range(a.ndim) if d != act_dim % a.ndim]
    return a.float().mean(dim=dims)


def whole_tensor_inits(model: nn.Module, layers: list[UnitLayer]) -> dict[int, Slice] | None:
    """Init description of every parameter, from the unit map and the head (``unit_discovery.head_slices``).

    Returns ``{id(param): Slice}``, or None when some parameter is not described (then callers
    fall back to a freshly built model).
    """
    slices: list[Slice] = [s for layer in layers for s in layer.incoming + layer.outgoing]
    slices += unit_discovery.head_slices(model) or []
    found = {id(s.tensor): s for s in slices}
    if all(id(p) in found for p in model.parameters()):
        return found
    return None


def forget_optimizer_state(optimizer: torch.optim.Optimizer | None, params: list[torch.Tensor]) -> None:
    """Drop the whole optimiser state (moments and step count) of ``params``: they restart fresh.

    SGD's momentum buffers are zeroed instead of dropped. # why: the fused SGD kernel cannot mix
    parameters with and without a buffer; without dampening (plasticlab's SGD has none) a zero
    buffer gives exactly a fresh buffer's first step, buf = grad.
    """
    if optimizer is None:
        return
    for p in params:
        state = optimizer.state.get(p)
        if state and isinstance(optimizer, torch.optim.SGD) and state.get("momentum_buffer") is not None:
            state["momentum_buffer"].zero_()
        else:
            optimizer.state.pop(p, None)
