"""The training loop: one function for every family, environment, method and K ≥ 1 members.

``run(members, sinks)`` walks the phase schedule once, step by step, for K runs that share it
(a single run is K = 1; a packed sweep's group is K ≥ 2). The step itself is a strategy chosen
once per run from what the run's parts declare (``engine/steps.py``). Per member it sends
records to its sink (a callable taking one dict): an ``epoch`` row every epoch (or at a phase
end), a ``phase`` row at every phase end (its step count, for equal-compute checks) and a
``task_end`` row with the measures and diagnostics after each task's pure phase. It never
imports the store: callers pass sinks and ``saves`` (checkpoint writers).

Host syncs happen only when rows are flushed (one stacked ``.tolist()`` per epoch for all
members) and at task ends; steps never sync.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch

from plasticlab import diagnostics
from plasticlab.augment import augment
from plasticlab.diagnostics import online
from plasticlab.diagnostics.forgetting import past_task_acc
from plasticlab.diagnostics.probe import plasticity_probe
from plasticlab.engine.accel import autocast
from plasticlab.engine.build import Setup, pick_device, setup, setup_pack  # noqa: F401  (re-exported: the engine's API)
from plasticlab.engine.steps import choose_step, train_step  # noqa: F401
from plasticlab.registry import Interrupted
from plasticlab.seeding import generator

Sink = Callable[[dict], None]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def batch_indices(s: Setup, step: int, cache: dict, t: int = 0) -> torch.Tensor:
    """Indices of step's batch (into task t's own training set).

    Tasks of one size: epoch j = step // S is a permutation of N drawn from (seed, j), so an epoch
    may run across a task boundary. Tasks of different sizes (``schedule.epoch_steps``): epoch j of
    task t counts from the task's first step and is a permutation of N_t drawn from (seed, t, j).
    """
    sched, bs = s.schedule, s.cfg.optim.batch_size
    if sched.epoch_steps:
        if cache.get("task") != t:
            cache["task"], cache["first"] = t, sched.first_step(t)
        j, b = divmod(step - cache["first"], sched.epoch_steps[t])
        key = (t, j)
    else:
        j, b = divmod(step, sched.steps_per_epoch)
        key = (j,)
    if cache.get("epoch") != key:
        n = s.task(t).n_train if sched.epoch_steps else s.n_train
        g = generator(s.cfg.seed, "shuffle", *key, device=s.device)
        cache["perm"] = torch.randperm(n, generator=g, device=s.device)
        cache["epoch"] = key
    return cache["perm"][b * bs : (b + 1) * bs]


def augment_batch(x: torch.Tensor, cfg, step: int, device) -> torch.Tensor:
    """Crop/flip augmentation drawn from (seed, step): resume-exact without saved RNG state."""
    a = cfg.augment
    g = generator(cfg.seed, "augment", step, device=device)
    return augment(x, g, crop_padding=a.crop_padding, flip=a.flip, padding_mode=a.padding_mode)


def batch(s: Setup, phase, old, new, step: int, cache: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Member ``s``'s (x, target) of ``step``: the environment's mix of tasks, then augmentation."""
    x, target = s.env.batch(phase, old, new, batch_indices(s, step, cache, phase.task))
    if s.cfg.augment.enabled:
        x = augment_batch(x, s.cfg, step, s.device)
    if s.cfg.engine.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, target


def batch_loss(s: Setup, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The task loss of member ``s``'s batch ``b`` in eval mode (online plasticity), on the device."""
    return online.batch_loss(s, *b, autocast(s.cfg.engine.precision, s.device))


def measure_task(s: Setup, t: int, end: bool = False) -> dict:
    """Measures of task t on its whole training and test sets, then the diagnostics.

    With ``end`` (the ``task_end`` row) also the task-end diagnostics that are switched on:
    forgetting (``diagnostics.past_tasks``) and the plasticity probe (``diagnostics.probe_steps``).
    Neither changes the run's model, optimiser or RNG state.
    """
    task = s.task(t)
    s.model.eval()
    row = s.family.measure(s.model, task, s.cfg.engine.eval_batch_size)
    s.model.train()
    if s.probe_idx is not None:
        idx = s.probe_idx if task.n_train == s.n_train else diagnostics.probe_indices(
            s.cfg.seed, task.n_train, s.cfg.diagnostics.probe_size, s.device)  # tasks of different sizes
        px, py = task.x_train[idx], task.y_train[idx]
        row.update(diagnostics.measure(s.model, s.unit_map, px, py, s.family.loss, s.cfg.diagnostics,
                                       init=s.init_params))
    d = s.cfg.diagnostics
    if end and d.past_tasks:
        row.update(past_task_acc(s.model, s.family, s.base, s.cfg.seed, t, d.past_tasks, s.cfg.engine.eval_batch_size))
    if end and d.probe_steps:
        row.update(plasticity_probe(s, t, setup, run))
    return row


def run(members: list[Setup], sinks: list[Sink], *, saves: list[Callable[[dict], None] | None] | None = None,
        resumes: list[dict | None] | None = None, progress: Callable[[int, int, int], None] | None = None,
        stop: Callable[[], bool] | None = None) -> list[Diverged | None]:
    """Train ``members`` (``build.setup`` of each run) from step 0 or their checkpoints; rows go to ``sinks``.

    Args:
        saves: member k's checkpoint writer, called at every task end (and every
            ``engine.checkpoint_every`` steps) with the state; it must store it atomically.
        resumes: member k's state previously passed to its ``save``; all at the same step.
        progress: called with (step, total steps, task) after every epoch row.
        stop: polled between steps; when it returns True every live member's checkpoint is
            written and ``Interrupted`` is raised (``--resume`` then continues exactly).
    Returns:
        Per member: None when it finished, or the ``Diverged`` that stopped its rows (a member
        whose training loss became NaN/inf; the others go on).
    """
    kk = len(members)
    saves = saves or [None] * kk
    sched = members[0].schedule
    acc = torch.zeros(kk, 3, device=members[0].device)  # per member: (Σ loss·n, Σ correct, Σ n) of the open row
    rows = [{"epoch": 0, "steps": 0} for _ in members]
    start = 0
    if resumes is not None and any(r is not None for r in resumes):
        steps = {None if r is None else int(r["step"]) for r in resumes}
        if len(steps) != 1:
            raise ValueError(f"cannot resume members that stopped at different steps {sorted(map(str, steps))}")
        for k, (s, r) in enumerate(zip(members, resumes, strict=True)):
            start = load_state(s, r, acc[k], rows[k])
    status: list[Diverged | None] = [None] * kk
    live = [k for k in range(kk)]
    caches: list[dict] = [{} for _ in members]
    every = [s.cfg.diagnostics.every if isinstance(s.cfg.diagnostics.every, int) else 0 for s in members]
    online_every = [s.cfg.diagnostics.online_every for s in members]
    ckpt_every = [s.cfg.engine.checkpoint_every for s in members]
    scored = [getattr(s.family, "accuracy", True) for s in members]

    def interrupt(at: int) -> None:
        for k in live:
            if saves[k]:
                saves[k](state_of(members[k], at, acc[k], rows[k]))
        raise Interrupted(at, status)

    step_fn = choose_step(members)
    for s in members:
        s.model.train()
    try:
        for phase in sched.phases:
            if phase.end <= start:
                continue
            t, first = phase.task, max(start, phase.start)
            if stop is not None and first > start and stop():
                interrupt(first)
            if start <= phase.start and phase.start == sched.first_step(t):
                for k in live:
                    rows[k] = {"epoch": 0, "steps": 0}
                    for m in members[k].methods:
                        m.on_task_start(t)
            epoch_steps = sched.epoch_length(t)
            news = [s.task(t) for s in members]
            olds = [s.task(phase.old) if phase.old is not None else None for s in members]
            for step in range(first, phase.end):
                if stop is not None and step > first and stop():
                    interrupt(step)
                batches = [batch(s, phase, o, n, step, c) for s, o, n, c in zip(members, olds, news, caches,
                                                                                strict=True)]
                watched = [k for k in live if online_every[k] and step % online_every[k] == 0]
                before = [batch_loss(members[k], batches[k]) for k in watched]
                step_fn(batches, step, acc)
                for k, b in zip(watched, before, strict=True):
                    online.add(rows[k], b, batch_loss(members[k], batches[k]))
                done = step + 1
                for r in rows:
                    r["steps"] += 1
                if rows[0]["steps"] == epoch_steps or done == phase.end:
                    flush_rows(sinks, acc, rows, t, phase, done, status, scored)
                    live = [k for k in live if status[k] is None]
                    if not live:
                        return status
                    if progress:
                        progress(done, sched.total_steps, t)
                for k in live:
                    if every[k] and done % every[k] == 0 and done != phase.end:
                        sinks[k]({"event": "diagnostics", "task": t, "step": done, **measure_task(members[k], t)})
                    if ckpt_every[k] and done % ckpt_every[k] == 0 and done != phase.end and saves[k]:
                        saves[k](state_of(members[k], done, acc[k], rows[k]))
            for k in live:
                sinks[k]({"event": "phase", "task": t, "phase": phase.kind, "alpha": phase.alpha,
                          "start": phase.start, "steps": phase.steps})
            if phase.kind == "task":
                for k in live:
                    s = members[k]
                    for m in s.methods:
                        m.on_task_end(t)
                    ends = online.value(rows[k]) if online_every[k] else {}
                    sinks[k]({"event": "task_end", "task": t, "step": phase.end, "phase": "task",
                              **measure_task(s, t, end=True), **ends})
                    if saves[k]:
                        saves[k](state_of(s, phase.end, acc[k], rows[k]))
    finally:
        step_fn.close()
    return status


def flush_rows(sinks: list[Sink], acc: torch.Tensor, rows: list[dict], t: int, phase, done: int,
               status: list, scored: list[bool]) -> None:
    """Every live member's epoch row (one host sync for all); a non-finite loss marks it diverged.
    ``train_acc`` is null for a member whose family declares ``accuracy = False`` (regression)."""
    values = acc.tolist()  # SYNC: once per epoch row, for all members
    for k, (loss_sum, correct, n) in enumerate(values):
        row = rows[k]
        if status[k] is None:
            if not math.isfinite(loss_sum):
                status[k] = Diverged(f"training loss is {loss_sum} at step {done} (task {t})")
            else:
                sinks[k]({"event": "epoch", "task": t, "epoch": row["epoch"], "alpha": phase.alpha,
                          "phase": phase.kind, "step": done, "steps": row["steps"], "train_loss": loss_sum / n,
                          "train_acc": correct / n if scored[k] else None})
        row["epoch"] += 1
        row["steps"] = 0
    acc.zero_()


def state_of(s: Setup, step: int, acc: torch.Tensor, row: dict) -> dict:
    """The checkpoint: plain tensors and numbers only (loadable with ``weights_only=True``).

    A snapshot: every tensor is copied (# why: a packed member's parameters are views of the
    stacked tensors, and saving a view would save all K members; and the optimiser's and methods'
    live tensors go on changing after ``save`` returns, which matters to a caller that keeps it)."""
    return {"step": step, "model": {k: v.clone() for k, v in s.model.state_dict().items()},
            "optimizer": copy.deepcopy(s.optimizer.state_dict()),
            "methods": copy.deepcopy([m.state_dict() for m in s.methods]),
            "acc": acc.detach().clone(), "row": copy.deepcopy(row)}


def load_state(s: Setup, state: dict, acc: torch.Tensor, row: dict) -> int:
    """Restore ``s`` (model, optimiser, methods) and the open row from a checkpoint; returns its step."""
    s.model.load_state_dict(state["model"])
    s.optimizer.load_state_dict(state["optimizer"])
    for m, ms in zip(s.methods, state["methods"], strict=True):
        m.load_state_dict(ms)
    acc.copy_(state["acc"])
    row.update(state["row"])
    return int(state["step"])
