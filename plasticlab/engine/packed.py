"""Packed runs: K compatible runs trained in one process as one batched model.

Plasticity studies are many long runs of small networks. ``run_packed(cfgs, sinks)`` trains K
runs whose data, task family, environment, model and batch size agree (``pack_key``) in one
loop: the K MLPs become one batched MLP whose weights are stacked tensors (K, out, in) and
whose layers are batched matrix products (``torch.baddbmm``; faster than ``torch.func.vmap``
over ``functional_call`` on CPU, docs/performance.md). Everything else stays per member and is
the separate run's own code:

* each member is a full ``loop.setup(cfg)``: its own seed (initialisation, task permutations
  and labels, epoch shuffles, probe batch, augmentation), its own model object whose
  parameters are *views* of row k of the stacked tensors (so methods, diagnostics, measures
  and checkpoints see an ordinary ``nn.Module``), its own optimiser (its own lr, weight decay,
  betas, state; the gradients it reads are views of the stacked gradients), its own methods
  and method state, rows, checkpoints and run directory;
* per step: one batched forward/backward for all members; then each member's optimiser step
  (the fused kernel, one call per member) and its methods' hooks, in the separate run's order.

So member k's rows equal the separate run of ``cfgs[k]`` up to float rounding (batched and
single matrix products round differently). Members that diverge stop writing rows (their
``Diverged`` is returned); the others go on.

Usage::

    packs, alone = plan_packs(cfgs, k=16)   # groups of indices; alone: {index: reason}
    for idx in packs:
        run_packed([cfgs[i] for i in idx], [sinks[i] for i in idx], saves=[saves[i] for i in idx])
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.adam import adam

from plasticlab.config import RunConfig, to_dict
from plasticlab.data import load_dataset
from plasticlab.engine import loop
from plasticlab.engine.accel import autocast, maybe_compile
from plasticlab.tasks.base import ClassificationFamily

PACKABLE_METHODS = frozenset({"l2", "l2-init", "spectral", "shrink-perturb", "redo", "cbp", "reset-frozen",
                              "head-reset", "full-reset"})
"""Methods checked to behave per member when packed (tests/engine/test_packed.py compares each
with its separate run). They touch only their member's model, optimiser and unit map."""

PACKABLE_MODELS = frozenset({"mlp"})


# ---------------------------------------------------------------- planning


def pack_key(cfg: RunConfig) -> tuple[str | None, str | None]:
    """``(key, None)`` when ``cfg`` can be packed (configs with equal keys can share a pack),
    else ``(None, reason)``.

    The key holds what one batched model needs to agree on: data, task family, environment,
    model, optimiser kind and batch size, device, precision, compile and threads. Seeds,
    learning rates, weight decay, methods and diagnostics may differ within a pack.
    """
    if cfg.model.name not in PACKABLE_MODELS:
        return None, f"model {cfg.model.name} cannot be packed (packable: {', '.join(sorted(PACKABLE_MODELS))})"
    if not isinstance(cfg.tasks, ClassificationFamily) or type(cfg.tasks).loss is not ClassificationFamily.loss:
        return None, f"tasks.family {cfg.tasks.family} cannot be packed (only classification families)"
    bad = [m.name for m in cfg.method if m.name not in PACKABLE_METHODS and not getattr(m, "packable", False)]
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


# ---------------------------------------------------------------- the batched model


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


def packed_loss(net: PackedMLP, x: torch.Tensor, target: torch.Tensor, capture: bool = False):
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


def mergeable(opt: torch.optim.Optimizer) -> bool:
    """Adam/AdamW on fused kernels with plain options: its step can join a merged fused call."""
    return type(opt) in (torch.optim.Adam, torch.optim.AdamW) and all(
        g["fused"] and not (g["amsgrad"] or g["maximize"] or g["capturable"] or g["differentiable"])
        and not torch.is_tensor(g["lr"]) for g in opt.param_groups)


@torch.no_grad()
def step_optimizers(optimizers: list[torch.optim.Optimizer]) -> None:
    """Every member's optimiser step, with one fused kernel call per group of equal hyper-parameters.

    The fused Adam kernel updates each tensor from its own parameter, gradient, moments and step
    count, so merging members' tensors into one call is exactly each member's own ``step()``
    (K Python calls and kernel launches become one). A member whose optimiser cannot be merged,
    or whose state is not yet built (step 0, or just dropped by a method), calls ``step()``.
    """
    merged: dict[tuple, tuple[list, list, list, list, list]] = {}
    for opt in optimizers:
        if not mergeable(opt) or any(p.grad is not None and "exp_avg" not in opt.state.get(p, {})
                                     for g in opt.param_groups for p in g["params"]):
            opt.step()
            continue
        for g in opt.param_groups:
            key = (g["lr"], tuple(g["betas"]), g["eps"], g["weight_decay"], g["decoupled_weight_decay"])
            ps, gs, ms, vs, steps = merged.setdefault(key, ([], [], [], [], []))
            for p in g["params"]:
                if p.grad is not None:
                    st = opt.state[p]
                    ps.append(p)
                    gs.append(p.grad)
                    ms.append(st["exp_avg"])
                    vs.append(st["exp_avg_sq"])
                    steps.append(st["step"])
    for (lr, (b1, b2), eps, wd, decoupled), (ps, gs, ms, vs, steps) in merged.items():
        adam(ps, gs, ms, vs, [], steps, foreach=False, fused=True, decoupled_weight_decay=decoupled, amsgrad=False,
             beta1=b1, beta2=b2, lr=lr, weight_decay=wd, eps=eps, maximize=False)


# ---------------------------------------------------------------- the loop


@dataclass
class Pack:
    """The members' setups and the batched model built from them."""

    members: list[loop.Setup]
    net: PackedMLP
    loss_fn: Callable
    capture: bool

    @property
    def device(self) -> torch.device:
        return self.members[0].device


def shared_bases(cfgs: list[RunConfig], device: torch.device) -> list:
    """Each member's dataset, loaded once per distinct (data config, subset seed): members whose
    data are not subsampled (``samples_per_class`` and ``test_samples_per_class`` null) share one."""
    cache: dict[str, object] = {}
    out = []
    for cfg in cfgs:
        d = cfg.data
        subset = d.samples_per_class is not None or d.test_samples_per_class is not None
        key = json.dumps([to_dict(cfg)["data"], cfg.seed if subset else None])
        if key not in cache:
            cache[key] = load_dataset(d.name, root=d.root, samples_per_class=d.samples_per_class,
                                      test_samples_per_class=d.test_samples_per_class, normalize=d.normalize,
                                      seed=cfg.seed, device=device)
        out.append(cache[key])
    return out


def setup_pack(cfgs: list[RunConfig], device: torch.device | None = None) -> Pack:
    """Build every member (``loop.setup``) and stack their models.

    Raises:
        ValueError: the configs cannot share a pack (``pack_key`` differs or is None).
    """
    keys = [pack_key(c) for c in cfgs]
    if any(key is None for key, _ in keys) or len({key for key, _ in keys}) != 1:
        why = next((w for _, w in keys if w), "the configs differ in data, tasks, environment, model, "
                   "optimiser kind, batch size or engine settings")
        raise ValueError(f"cannot pack these runs: {why} (use plan_packs to group them)")
    device = device or loop.pick_device(cfgs[0].engine.device)
    members = [loop.setup(c, device, base=b) for c, b in zip(cfgs, shared_bases(cfgs, device), strict=True)]
    net = PackedMLP([s.model for s in members])
    capture = any(getattr(m, "capture", False) for s in members for m in s.methods)
    return Pack(members, net, maybe_compile(packed_loss, cfgs[0].engine.compile, "packed training step"), capture)


def packed_batch(p: Pack, phase, olds: list, news: list, step: int, caches: list[dict]):
    """Stack each member's batch of ``step``, built exactly as its separate run builds it."""
    xs, ys = [], []
    for s, old, new, cache in zip(p.members, olds, news, caches, strict=True):
        x, y = s.env.batch(phase, old, new, loop.batch_indices(s, step, cache))
        if s.cfg.augment.enabled:
            x = loop.augment_batch(x, s.cfg, step, s.device)
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


def packed_step(p: Pack, x: torch.Tensor, target: torch.Tensor, step: int, acc: torch.Tensor) -> None:
    """One optimiser step of every member; adds (loss·n, correct, n) to row k of ``acc`` (K, 3).

    Same order as ``loop.train_step``: forward + losses (+ each member's method loss terms),
    zero grads, backward, each member's ``add_grad`` hooks, each member's optimiser step, each
    member's ``after_step`` hooks.
    No host sync.
    """
    ms = p.members
    with autocast(ms[0].cfg.engine.precision, p.device):
        loss, correct, acts = p.loss_fn(p.net, x, target, p.capture)
        total = loss.sum()
        for s in ms:
            for m in s.methods:
                extra = m.extra_loss(s.model)
                if extra is not None:
                    total = total + extra
    p.net.zero_grad()
    total.backward()
    p.net.collect_grads()
    for s in ms:
        for m in s.methods:
            m.add_grad()  # member k's .grad are views of row k of the stacked gradients
    step_optimizers([s.optimizer for s in ms])
    for i, a in enumerate(acts):
        for k, s in enumerate(ms):
            s.ctx.activations[i] = a[k]
    for k, s in enumerate(ms):
        for m in s.methods:
            if step % m.every == 0:
                m.after_step(step, x[k])
    n = x.shape[1]
    acc += torch.stack([loss.detach().float() * n, correct.float(), torch.full_like(loss, n, dtype=acc.dtype)], 1)


def member_state(s: loop.Setup, step: int, acc: torch.Tensor, row: dict) -> dict:
    """``loop.state_of`` with the model's tensors copied out of the stacked storage (a view would
    save all K members)."""
    state = loop.state_of(s, step, acc, row)
    state["model"] = {k: v.clone() for k, v in state["model"].items()}
    return state


def run_packed(cfgs: list[RunConfig], sinks: list[loop.Sink], *,
               saves: list[Callable[[dict], None] | None] | None = None, resumes: list[dict | None] | None = None,
               device: torch.device | None = None, progress: Callable[[int, int, int], None] | None = None,
               prepared: Pack | None = None) -> list[loop.Diverged | None]:
    """Train the K runs ``cfgs`` together; member k emits exactly the rows of ``loop.run(cfgs[k])``.

    Args:
        sinks: member k's row sink.
        saves: member k's checkpoint writer (as ``loop.run``'s ``save``), or None.
        resumes: member k's checkpoint to continue from; all must be None or all at the same step.
        progress: called with (step, total steps, task) after every row.
        prepared: the result of ``setup_pack(cfgs)`` when the caller already built it.
    Returns:
        Per member: None when it finished, or the ``Diverged`` that stopped its rows.
    """
    p = prepared or setup_pack(cfgs, device)
    ms, kk = p.members, len(p.members)
    saves = saves or [None] * kk
    sched = ms[0].schedule
    acc = torch.zeros(kk, 3, device=p.device)
    rows = [{"epoch": 0, "steps": 0} for _ in ms]
    start = 0
    if resumes is not None and any(r is not None for r in resumes):
        steps = {None if r is None else int(r["step"]) for r in resumes}
        if len(steps) != 1:
            raise ValueError(f"cannot resume a pack whose members stopped at different steps {sorted(map(str, steps))}")
        for k, (s, r) in enumerate(zip(ms, resumes, strict=True)):
            start = loop.load_state(s, r, acc[k], rows[k])
    caches: list[dict] = [{} for _ in ms]
    status: list[loop.Diverged | None] = [None] * kk
    every = [c.diagnostics.every if isinstance(c.diagnostics.every, int) else 0 for c in cfgs]
    ckpt_every = [c.engine.checkpoint_every for c in cfgs]
    for s in ms:
        s.model.train()
    for phase in sched.phases:
        if phase.end <= start:
            continue
        t = phase.task
        if start <= phase.start and phase.start == sched.first_step(t):
            for k, s in enumerate(ms):
                rows[k] = {"epoch": 0, "steps": 0}
                for m in s.methods:
                    m.on_task_start(t)
        news = [s.task(t) for s in ms]
        olds = [s.task(phase.old) if phase.old is not None else None for s in ms]
        for step in range(max(start, phase.start), phase.end):
            x, target = packed_batch(p, phase, olds, news, step, caches)
            packed_step(p, x, target, step, acc)
            done = step + 1
            for r in rows:
                r["steps"] += 1
            if rows[0]["steps"] == sched.steps_per_epoch or done == phase.end:
                flush_rows(sinks, acc, rows, t, phase, done, status)
                if progress:
                    progress(done, sched.total_steps, t)
            for k, s in enumerate(ms):
                if status[k] is not None:
                    continue
                if every[k] and done % every[k] == 0 and done != phase.end:
                    sinks[k]({"event": "diagnostics", "task": t, "step": done, **loop.measure_task(s, t)})
                if ckpt_every[k] and done % ckpt_every[k] == 0 and done != phase.end and saves[k]:
                    saves[k](member_state(s, done, acc[k], rows[k]))
        for k in range(kk):
            if status[k] is None:
                sinks[k]({"event": "phase", "task": t, "phase": phase.kind, "alpha": phase.alpha,
                          "start": phase.start, "steps": phase.steps})
        if phase.kind == "task":
            for k, s in enumerate(ms):
                if status[k] is not None:
                    continue
                for m in s.methods:
                    m.on_task_end(t)
                sinks[k](loop.task_end_row(s, t, phase.end))
                if saves[k]:
                    saves[k](member_state(s, phase.end, acc[k], rows[k]))
    return status


def flush_rows(sinks: list[loop.Sink], acc: torch.Tensor, rows: list[dict], t: int, phase, done: int,
               status: list) -> None:
    """Every live member's epoch row (one host sync for all), as ``loop.flush_row`` writes it."""
    values = acc.tolist()  # SYNC: once per epoch row, for all members
    for k, (loss_sum, correct, n) in enumerate(values):
        row = rows[k]
        if status[k] is None:
            if not math.isfinite(loss_sum):
                status[k] = loop.Diverged(f"training loss is {loss_sum} at step {done} (task {t})")
            else:
                sinks[k]({"event": "epoch", "task": t, "epoch": row["epoch"], "alpha": phase.alpha,
                          "phase": phase.kind, "step": done, "steps": row["steps"], "train_loss": loss_sum / n,
                          "train_acc": correct / n})
        row["epoch"] += 1
        row["steps"] = 0
    acc.zero_()
