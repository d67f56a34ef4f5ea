"""The training loop: one function for every family, environment and method.

``run(cfg, sink)`` builds everything from the config, walks the phase schedule step by step,
and sends records to ``sink`` (a callable taking one dict): an ``epoch`` row every epoch (or at
a phase end), a ``phase`` row at every phase end (its step count, for equal-compute checks) and
a ``task_end`` row with the measures and diagnostics after each task's pure phase. It never
imports the store: the caller passes ``sink`` and ``save`` (checkpoint writer).

Host syncs happen only when a row is flushed (one stacked ``.tolist()`` per epoch row) and at
task ends; ``train_step`` itself never syncs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from plasticlab import diagnostics, registry, units
from plasticlab.augment import augment
from plasticlab.config import RunConfig
from plasticlab.data import load_dataset
from plasticlab.engine import whole_step
from plasticlab.engine.accel import autocast, maybe_compile
from plasticlab.engine.optim import make_optimizer
from plasticlab.envs import build_schedule, steps_per_epoch
from plasticlab.methods import MethodContext
from plasticlab.registry import UserError
from plasticlab.seeding import derived_seed, generator

Sink = Callable[[dict], None]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)


def build_model(cfg: RunConfig, input_shape: tuple[int, ...], n_out: int, seed: int, device) -> nn.Module:
    """The model of ``cfg``, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, "init"))
        model = cfg.model.build(input_shape, n_out)
    if cfg.engine.channels_last and len(input_shape) == 3:
        model = model.to(memory_format=torch.channels_last)  # 4-d weights only
    return model.to(device)


@dataclass
class Setup:
    """Everything ``run`` builds before step 0 (also used by ``diagnose`` and tests)."""

    cfg: RunConfig
    device: torch.device
    base: object
    family: object
    model: nn.Module
    optimizer: torch.optim.Optimizer
    unit_map: list
    methods: list
    ctx: MethodContext
    schedule: object
    env: object
    probe_idx: torch.Tensor | None
    n_train: int
    tasks: dict = field(default_factory=dict)
    loss_fn: Callable | None = None
    """``family.loss``, compiled when ``engine.compile`` (the step's forward + loss)."""
    whole: object | None = None
    """The whole step as one compiled graph (``engine/whole_step.py``), where the run allows it."""

    def __post_init__(self):
        self.loss_fn = self.loss_fn or self.family.loss

    def task(self, t: int):
        """Task t, built on first use; only the tasks in use are kept."""
        if t not in self.tasks:
            self.tasks = {k: v for k, v in self.tasks.items() if k >= t - 1}
            self.tasks[t] = self.family.make_task(self.base, self.cfg.seed, t)
        return self.tasks[t]


def setup(cfg: RunConfig, device: torch.device | None = None, *, base: object | None = None) -> Setup:
    """Build data, model, optimiser, methods and schedule for ``cfg``.

    ``base``: the already loaded dataset of ``cfg`` (packed runs share one copy).
    """
    device = device or pick_device(cfg.engine.device)
    if cfg.engine.threads:
        torch.set_num_threads(cfg.engine.threads)
    family = cfg.tasks
    d = cfg.data
    if base is None:
        base = (load_dataset(d.name, root=d.root, samples_per_class=d.samples_per_class,
                             test_samples_per_class=d.test_samples_per_class, normalize=d.normalize,
                             seed=cfg.seed, device=device)
                if family.uses_data else family.prepare(cfg.seed, device))
    n_out, in_shape = family.n_outputs(base), family.input_shape(base)
    if cfg.augment.enabled and len(in_shape) != 3:
        raise UserError("config: augment.enabled: needs image data (C, H, W); set augment.enabled=false")
    model = build_model(cfg, in_shape, n_out, cfg.seed, device)
    optimizer = make_optimizer(model, cfg.optim)
    unit_map = units.build(model) if hasattr(model, "unit_layers") else []
    ctx = MethodContext(model, optimizer, unit_map, cfg.seed, device,
                        fresh_model=lambda s: build_model(cfg, in_shape, n_out, s, device),
                        activations=[None] * len(unit_map))
    methods = [dataclasses.replace(m) for m in cfg.method]  # fresh instances: state is per run, not per config
    for m in methods:
        m.setup(ctx)
    n_train = family.n_train(base) if hasattr(family, "n_train") else base.x_train.shape[0]
    schedule = build_schedule(cfg.environment, family.count, steps_per_epoch(n_train, cfg.optim.batch_size))
    env = registry.ENVIRONMENTS[cfg.environment.kind](classes=n_out, mode=cfg.environment.transition.mode)
    probe_idx = None
    if cfg.diagnostics.every != "never":
        probe_idx = diagnostics.probe_indices(cfg.seed, n_train, cfg.diagnostics.probe_size, device)
    s = Setup(cfg, device, base, family, model, optimizer, unit_map, methods, ctx, schedule, env,
              probe_idx, n_train, loss_fn=maybe_compile(family.loss, cfg.engine.compile))
    s.whole = whole_step.build(s)
    return s


def capture_hooks(s: Setup) -> list:
    """Forward hooks that store each unit layer's activation when a method asks for them."""
    if not any(getattr(m, "capture", False) for m in s.methods):
        return []

    def hook(i):
        def fn(_module, _inp, out):
            s.ctx.activations[i] = out.detach()

        return fn

    return [layer.activation.register_forward_hook(hook(i)) for i, layer in enumerate(s.unit_map)]


def train_step(s: Setup, x: torch.Tensor, target: torch.Tensor, step: int, acc: torch.Tensor) -> None:
    """One optimiser step; adds (task loss·n, correct, n) to the device accumulator ``acc``.

    With ``engine.precision: bf16`` the forward and losses run under autocast; weights, gradients,
    optimiser state, the loss and ``acc`` stay fp32 (``engine/accel.py``).
    """
    if s.cfg.engine.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if s.whole is not None and s.whole.step(x, target, acc):
        return
    with autocast(s.cfg.engine.precision, s.device):
        loss, correct, n = s.loss_fn(s.model, x, target)
        total = loss
        for m in s.methods:
            extra = m.extra_loss(s.model)
            if extra is not None:
                total = total + extra
    s.optimizer.zero_grad(set_to_none=True)
    total.backward()
    for m in s.methods:
        m.add_grad()
    s.optimizer.step()
    for m in s.methods:
        if step % m.every == 0:
            m.after_step(step, x)
    n = n.float() if torch.is_tensor(n) else torch.full_like(acc[2], n)  # token families count on the device
    acc += torch.stack([loss.detach().float() * n, correct.float(), n])


def batch_indices(s: Setup, step: int, cache: dict) -> torch.Tensor:
    """Indices of step's batch: epoch j = step // S is a permutation drawn from (seed, j)."""
    spe, bs = s.schedule.steps_per_epoch, s.cfg.optim.batch_size
    j, b = divmod(step, spe)
    if cache.get("epoch") != j:
        g = generator(s.cfg.seed, "shuffle", j, device=s.device)
        cache["perm"] = torch.randperm(s.n_train, generator=g, device=s.device)
        cache["epoch"] = j
    return cache["perm"][b * bs : (b + 1) * bs]


def augment_batch(x: torch.Tensor, cfg: RunConfig, step: int, device) -> torch.Tensor:
    """Crop/flip augmentation drawn from (seed, step): resume-exact without saved RNG state."""
    a = cfg.augment
    g = generator(cfg.seed, "augment", step, device=device)
    return augment(x, g, crop_padding=a.crop_padding, flip=a.flip, padding_mode=a.padding_mode)


def measure_task(s: Setup, t: int) -> dict:
    """Measures of task t on its whole training and test sets, then the diagnostics."""
    task = s.task(t)
    s.model.eval()
    row = s.family.measure(s.model, task, s.cfg.engine.eval_batch_size)
    s.model.train()
    if s.probe_idx is not None:
        px, py = task.x_train[s.probe_idx], task.y_train[s.probe_idx]
        row.update(diagnostics.measure(s.model, s.unit_map, px, py, s.family.loss, s.cfg.diagnostics))
    return row


def task_end_row(s: Setup, t: int, step: int) -> dict:
    """The ``task_end`` row of task t, measured at the end of its pure phase (``phase: task``)."""
    return {"event": "task_end", "task": t, "step": step, "phase": "task", **measure_task(s, t)}


def run(cfg: RunConfig, sink: Sink, *, save: Callable[[dict], None] | None = None, resume: dict | None = None,
        device: torch.device | None = None, progress: Callable[[int, int, int], None] | None = None,
        prepared: Setup | None = None) -> Setup:
    """Train ``cfg`` from step 0 (or from the checkpoint ``resume``), emitting rows to ``sink``.

    Args:
        save: called with the checkpoint state at every task end (and every
            ``engine.checkpoint_every`` steps); must store it atomically.
        resume: a state previously passed to ``save``; training continues exactly from it.
        progress: called with (step, total steps, task) after every row.
        prepared: the result of ``setup(cfg)`` when the caller already built it.
    Raises:
        Diverged: the training loss became NaN/inf (rows up to that point are kept).
    """
    s = prepared or setup(cfg, device)
    sched = s.schedule
    acc = torch.zeros(3, device=s.device)  # (Σ loss·n, Σ correct, Σ n) of the open row
    row = {"epoch": 0, "steps": 0}
    start = 0
    if resume is not None:
        start = load_state(s, resume, acc, row)
    cache: dict = {}
    hooks = capture_hooks(s)
    s.model.train()
    every = cfg.diagnostics.every if isinstance(cfg.diagnostics.every, int) else 0
    ckpt_every = cfg.engine.checkpoint_every
    try:
        for phase in sched.phases:
            if phase.end <= start:
                continue
            t = phase.task
            if start <= phase.start and phase.start == sched.first_step(t):
                row = {"epoch": 0, "steps": 0}
                for m in s.methods:
                    m.on_task_start(t)
            new, old = s.task(t), (s.task(phase.old) if phase.old is not None else None)
            for step in range(max(start, phase.start), phase.end):
                x, target = s.env.batch(phase, old, new, batch_indices(s, step, cache))
                if cfg.augment.enabled:
                    x = augment_batch(x, cfg, step, s.device)
                train_step(s, x, target, step, acc)
                row["steps"] += 1
                done = step + 1
                if row["steps"] == sched.steps_per_epoch or done == phase.end:
                    flush_row(sink, acc, row, t, phase, done)
                    if progress:
                        progress(done, sched.total_steps, t)
                if every and done % every == 0 and done != phase.end:
                    sink({"event": "diagnostics", "task": t, "step": done, **measure_task(s, t)})
                if ckpt_every and done % ckpt_every == 0 and done != phase.end and save:
                    save(state_of(s, done, acc, row))
            sink({"event": "phase", "task": t, "phase": phase.kind, "alpha": phase.alpha,
                  "start": phase.start, "steps": phase.steps})
            if phase.kind == "task":
                for m in s.methods:
                    m.on_task_end(t)
                sink(task_end_row(s, t, phase.end))
                if save:
                    save(state_of(s, phase.end, acc, row))
    finally:
        for h in hooks:
            h.remove()
    return s


def flush_row(sink: Sink, acc: torch.Tensor, row: dict, t: int, phase, done: int) -> None:
    loss_sum, correct, n = acc.tolist()  # SYNC: once per epoch row
    if not math.isfinite(loss_sum):
        raise Diverged(f"training loss is {loss_sum} at step {done} (task {t})")
    sink({"event": "epoch", "task": t, "epoch": row["epoch"], "alpha": phase.alpha, "phase": phase.kind,
          "step": done, "steps": row["steps"], "train_loss": loss_sum / n, "train_acc": correct / n})
    acc.zero_()
    row["epoch"] += 1
    row["steps"] = 0


def state_of(s: Setup, step: int, acc: torch.Tensor, row: dict) -> dict:
    """The checkpoint: plain tensors and numbers only (loadable with ``weights_only=True``)."""
    return {"step": step, "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
            "methods": [m.state_dict() for m in s.methods], "acc": acc.detach().clone(), "row": dict(row)}


def load_state(s: Setup, state: dict, acc: torch.Tensor, row: dict) -> int:
    s.model.load_state_dict(state["model"])
    s.optimizer.load_state_dict(state["optimizer"])
    for m, ms in zip(s.methods, state["methods"], strict=True):
        m.load_state_dict(ms)
    acc.copy_(state["acc"])
    row.update(state["row"])
    return int(state["step"])
