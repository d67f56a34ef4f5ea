"""Step strategies: how the loop takes one optimiser step of its K members.

The loop (``engine/loop.py::run``) is the same for every run; what differs is chosen once per
run by ``choose_step(members)`` from what the run's parts declare:

* ``WholeStep`` (``engine/whole_step.py``): K = 1, ``engine.compile`` on, and the run allows the
  whole step as one compiled graph (Adam/AdamW, no method acting inside steps, cross-entropy
  family, no buffers);
* ``EagerStep``: K = 1 otherwise — plain modules, fused optimiser, forward + loss compiled when
  ``engine.compile`` is on;
* ``PackedStep`` (``engine/packed.py``): K ≥ 2 members trained as one batched model.

A strategy is called as ``step(batches, step, acc)``: ``batches`` holds each member's (x, target),
``acc`` (K, 3) accumulates each member's (Σ loss·n, Σ correct, Σ n) on the device. No host sync.
"""

from __future__ import annotations

import torch

from plasticlab.engine import whole_step
from plasticlab.engine.accel import autocast
from plasticlab.engine.build import Setup
from plasticlab.engine.optim import step_optimizers
from plasticlab.engine.packed import PackedStep
from plasticlab.methods.base import due


def clear_grads(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` without its profiler record (# why: at batch 1 the
    record alone cost ≈ 0.1 ms of a ≈ 1 ms step, benchmarks/batch1.py)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def train_step(s: Setup, x: torch.Tensor, target: torch.Tensor, step: int, acc: torch.Tensor) -> None:
    """One eager optimiser step of ``s``; adds (task loss·n, correct, n) to the device accumulator ``acc`` (3,).

    With ``engine.precision: bf16`` the forward and losses run under autocast; weights, gradients,
    optimiser state, the loss and ``acc`` stay fp32 (``engine/accel.py``). Only methods that
    declare ``per_step`` have their per-step hooks called.
    """
    if s.cfg.engine.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    methods = [m for m in s.methods if m.per_step]
    with autocast(s.cfg.engine.precision, s.device):
        loss, correct, n = s.loss_fn(s.model, x, target)
        total = loss
        for m in methods:
            extra = m.extra_loss(s.model)
            if extra is not None:
                total = total + extra
    clear_grads(s.optimizer)
    total.backward()
    for m in methods:
        m.add_grad()
    step_optimizers([s.optimizer])
    for m in methods:
        if due(m, step):
            m.after_step(step, x)
    n = n.float() if torch.is_tensor(n) else torch.full_like(acc[2], n)  # token families count on the device
    acc += torch.stack([loss.detach().float() * n, correct.float(), n])


class EagerStep:
    """One run on plain modules; forward hooks store unit activations for methods that ``capture``."""

    def __init__(self, s: Setup):
        self.s = s
        self.hooks = []
        if any(m.capture for m in s.methods):
            self.hooks = [layer.activation.register_forward_hook(self._store(i)) for i, layer in enumerate(s.unit_map)]

    def _store(self, i: int):
        def fn(_module, _inp, out):
            self.s.ctx.activations[i] = out.detach()

        return fn

    def __call__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], step: int, acc: torch.Tensor) -> None:
        (x, target), = batches
        train_step(self.s, x, target, step, acc[0])

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


class CompiledWholeStep(EagerStep):
    """``WholeStep`` where a step allows it (its state exists, compiling works), else the eager step."""

    def __init__(self, s: Setup, whole: whole_step.WholeStep):
        super().__init__(s)
        self.whole = whole

    def __call__(self, batches, step: int, acc: torch.Tensor) -> None:
        (x, target), = batches
        if not self.whole.step(x, target, acc[0]):
            train_step(self.s, x, target, step, acc[0])


def choose_step(members: list[Setup]):
    """The step strategy of ``members`` (see the module docstring)."""
    if len(members) > 1:
        return PackedStep(members)
    s = members[0]
    whole = whole_step.build(s)
    return EagerStep(s) if whole is None else CompiledWholeStep(s, whole)
