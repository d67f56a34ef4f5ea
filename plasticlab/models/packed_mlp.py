"""K MLPs of one architecture as one batched model: stacked weights, batched matrix products.

``MLP.stack(models)`` builds a ``PackedMLP`` whose stacked tensors (K, out, in) hold every
member's weights; each member's parameters become *views* of row k, so methods, diagnostics,
measures and checkpoints keep seeing ordinary ``nn.Module``s. Its layers are batched matrix
products (``torch.baddbmm``; faster than ``torch.func.vmap`` over ``functional_call`` on CPU,
docs/performance.md). Used by packed runs (``engine/packed.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BatchedLinear(torch.autograd.Function):
    """y = h·Wᵀ + b for every member at once: h (K, B, in), W (K, out, in), b (K, out) → (K, B, out).

    Backward: ∂h = g·W, ∂W = gᵀ·h, ∂b = Σ_B g, computed in the dtype of g (bf16 under autocast,
    as autocast's own backward does) and returned in each input's dtype.
    # why: autograd's backward of ``baddbmm(b, h, W.transpose(1, 2))`` yields ∂W transposed, and
    AccumulateGrad copies it into W's layout — one extra pass over K weight copies per step.
    """

    @staticmethod
    def forward(ctx, h, w, b):
        ctx.save_for_backward(h, w)
        ctx.b_dtype = b.dtype
        return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        h, w = ctx.saved_tensors
        gh = torch.bmm(g, w.to(g.dtype)).to(h.dtype) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(g.transpose(1, 2), h.to(g.dtype)).to(w.dtype)
        return gh, gw, g.sum(1).to(ctx.b_dtype)


class PackedMLP:
    """K ``MLP``s of one architecture as stacked tensors; member parameters become views of them.

    After construction, parameter ``p`` of member k *is* row k of the stacked leaf
    ``params[name]`` (same storage), so in-place edits of a member's parameters (methods,
    ``load_state_dict``) change the batched model. After ``collect_grads`` (called after each
    backward), ``p.grad`` is row k of the stacked gradient plus the gradient of any loss term
    built from the member's own parameters (methods' ``extra_loss``).
    """

    def __init__(self, models: list[nn.Module]):
        self.models = models
        self.ref = models[0]
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.member_params: dict[str, list[nn.Parameter]] = {}
        for name, _ in self.ref.named_parameters():
            members = [m.get_parameter(name) for m in models]
            stacked = torch.stack([p.detach() for p in members]).requires_grad_(True)
            for k, p in enumerate(members):
                p.data = stacked.data[k]
            self.params[name] = stacked
            self.member_params[name] = members
        for name, _ in self.ref.named_buffers():
            members = [m.get_buffer(name) for m in models]
            stacked = torch.stack([b.detach() for b in members])
            for k, b in enumerate(members):
                b.data = stacked[k]
            self.buffers[name] = stacked

    def zero_grad(self) -> None:
        """Drop every gradient (# why: backward then *steals* its fresh gradient buffers; a kept,
        zeroed buffer would cost a read-modify-write pass over K copies of every weight)."""
        for name, stacked in self.params.items():
            stacked.grad = None
            for p in self.member_params[name]:
                p.grad = None

    @torch.no_grad()
    def collect_grads(self) -> None:
        """Point every member's ``.grad`` at its row of the stacked gradient, after adding the
        gradient its own parameter received (from a method's loss term), if any."""
        for name, stacked in self.params.items():
            g = stacked.grad if stacked.grad is not None else torch.zeros_like(stacked)
            stacked.grad = g
            for k, p in enumerate(self.member_params[name]):
                if p.grad is not None:
                    g[k] += p.grad
                p.grad = g[k]

    def linear(self, prefix: str, h: torch.Tensor) -> torch.Tensor:
        """h (K, B, in) → (K, B, out) with each member's own weight and bias."""
        w, b = self.params[f"{prefix}.weight"], self.params[f"{prefix}.bias"]
        return BatchedLinear.apply(h, w, b)

    def norm(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Member-wise LayerNorm / BatchNorm (training mode) / nothing on h (K, B, D)."""
        module = self.ref.norms[i]
        if isinstance(module, nn.LayerNorm):
            y = F.layer_norm(h, module.normalized_shape, None, None, module.eps)
            g, b = self.params[f"norms.{i}.weight"], self.params[f"norms.{i}.bias"]
            return torch.addcmul(b.unsqueeze(1), y, g.unsqueeze(1)).to(h.dtype)  # why: nn.LayerNorm keeps h's dtype
        if isinstance(module, nn.BatchNorm1d):
            # why: BatchNorm normalises every feature over the batch, so K members × D features
            # are K·D independent BatchNorm channels of a (B, K·D) input.
            k, batch, d = h.shape
            p = f"norms.{i}"
            self.buffers[f"{p}.num_batches_tracked"].add_(1)
            flat = F.batch_norm(h.transpose(0, 1).reshape(batch, k * d), self.buffers[f"{p}.running_mean"].view(-1),
                                self.buffers[f"{p}.running_var"].view(-1), self.params[f"{p}.weight"].view(-1),
                                self.params[f"{p}.bias"].view(-1), True, module.momentum, module.eps)
            return flat.view(batch, k, d).transpose(0, 1)
        return h

    def forward(self, x: torch.Tensor, capture: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (K, B, C) of inputs x (K, B, *) and, with ``capture``, every hidden layer's
        activation (K, B, units), detached."""
        h = x.flatten(2)
        acts = []
        for i, act in enumerate(self.ref.acts):
            h = act(self.norm(i, self.linear(f"linears.{i}", h)))
            if capture:
                acts.append(h.detach())
        return self.linear("head", h), acts
