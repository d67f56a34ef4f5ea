"""Packed runs: K compatible runs trained in one process as one batched model.

Plasticity studies are many long runs of small networks. K runs whose data, task family,
environment, model and batch size agree (``pack_key``) can share one step: the K models become
one batched model (the model declares it can: ``MLP.stack``, ``models/packed_mlp.py``).
``PackedStep`` is the engine's step strategy for K ≥ 2 members; the loop itself
(``engine/loop.py::run``) is the same as for a single run. Everything else stays per member and
is the separate run's own code:

* each member is a full ``build.setup(cfg)``: its own seed (initialisation, task permutations
  and labels, epoch shuffles, probe batch, augmentation), its own model object whose
  parameters are *views* of row k of the stacked tensors, its own optimiser (its own lr, weight
  decay, betas, state; the gradients it reads are views of the stacked gradients), its own
  methods and method state, rows, checkpoints and run directory;
* per step: one batched forward/backward for all members; then each member's optimiser step
  (merged fused kernel calls, ``optim.step_optimizers``) and its methods' hooks, in the separate run's order.

Member k's rows equal the separate run of ``cfgs[k]`` up to float rounding: batched and single
matrix products round differently, and training amplifies the difference over hundreds of
steps (docs/performance.md gives measured gaps). Usage::

    packs, alone = plan_packs(cfgs, k=16)   # groups of indices; alone: {index: reason}
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from plasticlab.config import RunConfig, to_dict
from plasticlab.engine.accel import autocast, maybe_compile
from plasticlab.engine.build import Setup
from plasticlab.engine.optim import step_optimizers
from plasticlab.methods.base import due
from plasticlab.registry import UserError

# ---------------------------------------------------------------- planning


def pack_key(cfg: RunConfig) -> tuple[str | None, str | None]:
    """``(key, None)`` when ``cfg`` can be packed (configs with equal keys can share a pack),
    else ``(None, reason)``.

    The key holds what one batched model needs to agree on: data, task family, environment,
    model, optimiser kind and batch size, device, precision, compile and threads. Seeds,
    learning rates, weight decay, methods and diagnostics may differ within a pack.
    """
    if not getattr(cfg.model, "packable", False):
        return None, f"model {cfg.model.name} cannot be packed (it has no batched form)"
    if not getattr(cfg.tasks, "cross_entropy", False):
        return None, f"tasks.family {cfg.tasks.family} cannot be packed (only cross-entropy classification families)"
    bad = [m.name for m in cfg.method if not m.packable]
    if bad:
        return None, f"method {', '.join(bad)} cannot be packed"
    d = to_dict(cfg)
    e = d["engine"]
    shared = [d["data"], d["tasks"], d["environment"], d["model"], d["optim"]["name"], d["optim"]["batch_size"],
              e["device"], e["precision"], e["compile"], e["threads"]]
    return json.dumps(shared, sort_keys=True), None


def plan_packs(cfgs: list[RunConfig], k: int) -> tuple[list[list[int]], dict[int, str]]:
    """Group the indices of ``cfgs`` into packs of at most ``k`` compatible configs.

    Returns:
        (packs, alone): ``packs`` in first-appearance order (a pack of one is an ordinary run);
        ``alone`` maps the index of every config that cannot be packed to the reason.
    """
    groups: dict[str, list[int]] = {}
    alone: dict[int, str] = {}
    for i, cfg in enumerate(cfgs):
        key, why = pack_key(cfg)
        if key is None:
            alone[i] = why
        else:
            groups.setdefault(key, []).append(i)
    packs = [idx[j : j + k] for idx in groups.values() for j in range(0, len(idx), max(1, k))]
    return packs, alone


def check_pack(cfgs: list[RunConfig]) -> None:
    """Raise UserError (naming why) unless ``cfgs`` can share one pack."""
    keys = [pack_key(c) for c in cfgs]
    if any(key is None for key, _ in keys) or len({key for key, _ in keys}) != 1:
        why = next((w for _, w in keys if w), "the configs differ in data, tasks, environment, model, "
                   "optimiser kind, batch size or engine settings")
        raise UserError(f"cannot pack these runs: {why} (plan_packs groups the runs that can)")


# ---------------------------------------------------------------- the step


def packed_loss(net, x: torch.Tensor, target: torch.Tensor, capture: bool = False):
    """Per-member cross-entropy and correct counts, as ``classification_loss`` computes them per run.

    Args:
        x: (K, B, *) inputs; target: (K, B) class ids or (K, B, C) probabilities.
    Returns:
        (loss (K,), correct (K,), activations): mean loss and number correct of each member.
    """
    out, acts = net.forward(x, capture)
    k, b = out.shape[:2]
    loss = F.cross_entropy(out.float().flatten(0, 1), target.flatten(0, 1), reduction="none").view(k, b).mean(1)
    hard = target.argmax(-1) if target.is_floating_point() else target
    correct = (out.argmax(-1) == hard).sum(1)
    return loss, correct, acts


class PackedStep:
    """The step strategy of K ≥ 2 members: one batched forward/backward, then per-member updates.

    Same order as the eager step (``loop.train_step``): forward + losses (+ each member's method
    loss terms), zero grads, backward, each member's ``add_grad`` hooks, every member's
    optimiser step, each member's ``after_step`` hooks. No host sync.
    """

    def __init__(self, members: list[Setup]):
        check_pack([s.cfg for s in members])
        self.members = members
        self.net = type(members[0].model).stack([s.model for s in members])
        cfg = members[0].cfg
        self.loss_fn = maybe_compile(packed_loss, cfg.engine.compile, "packed training step")
        self.capture = any(m.capture for s in members for m in s.methods)
        self.per_step = [[m for m in s.methods if m.per_step] for s in members]

    def __call__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], step: int, acc: torch.Tensor) -> None:
        ms = self.members
        x, target = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
        with autocast(ms[0].cfg.engine.precision, ms[0].device):
            loss, correct, acts = self.loss_fn(self.net, x, target, self.capture)
            total = loss.sum()
            for s, methods in zip(ms, self.per_step, strict=True):
                for m in methods:
                    extra = m.extra_loss(s.model)
                    if extra is not None:
                        total = total + extra
        self.net.zero_grad()
        total.backward()
        self.net.collect_grads()
        for methods in self.per_step:
            for m in methods:
                m.add_grad()  # member k's .grad are views of row k of the stacked gradients
        step_optimizers([s.optimizer for s in ms])
        for i, a in enumerate(acts):
            for k, s in enumerate(ms):
                s.ctx.activations[i] = a[k]
        for k, methods in enumerate(self.per_step):
            for m in methods:
                if due(m, step):
                    m.after_step(step, x[k])
        n = x.shape[1]
        acc += torch.stack([loss.detach().float() * n, correct.float(), torch.full_like(loss, n, dtype=acc.dtype)],
                           1)

    def close(self) -> None:
        pass
