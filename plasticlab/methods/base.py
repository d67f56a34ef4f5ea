"""The method protocol: how a mitigation hooks into the training loop.

The loop (``plasticlab.engine.loop``) owns the order. Per optimiser step::

    out = model(x); loss = task_loss + Σ m.extra_loss(model)      # inside the graph
    optimizer.zero_grad(); loss.backward()
    for m in methods: m.add_grad()                                  # known gradients of penalties
    optimizer.step()
    for m in methods: if due(m, step): m.after_step(step, x)           # device ops only

and at task boundaries ``on_task_start(task)`` (before the task's first step) and
``on_task_end(task)`` (after its last step, before measurements). Methods run in config order
and do not depend on each other. A method's hyperparameters are its dataclass fields (its
config section); state built in ``setup`` gets a trailing ``_``.

What a method needs is *declared* by the method (class attributes, or properties where it
depends on the method's options), never listed by name elsewhere. Every step path of the engine
(eager, compiled whole step, packed K members), the pack planner and transfer read these:

* ``per_step``: it uses ``extra_loss``, ``add_grad`` or ``after_step`` — the engine calls those
  hooks only for methods that declare it, and the compiled whole-step graph takes only runs
  whose methods act at task boundaries;
* ``capture``: it reads the unit layers' activations of the latest training forward;
* ``packable``: it touches only its own run's model, optimiser, unit map and generators, so a
  packed member behaves as the separate run (the common tests check every registered method);
* ``intervention``: transfer may apply it once, between pre-training and fine-tuning
  (``intervene()``);
* ``busy``: options under which it acts within a few steps of a tiny run (the common tests
  iterate over the registry with them);
* ``entry_step``: it re-initialises entries of parameters and wants their Adam bias correction
  to restart (a per-entry step count, ``optim.per_entry_step: auto``), as Dohare et al.'s AdamGnT
  and the reference implementations do.

``every``: ``after_step`` runs after the optimiser steps N, 2N, 3N, … of the run (counted from 1,
over all tasks; ``due``), so with N = steps per task it runs once per task, after its last step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import nn

from plasticlab.seeding import derived_seed
from plasticlab.units import UnitLayer


@dataclass
class MethodContext:
    """What a method may touch, handed to ``setup`` once before step 0."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    units: list[UnitLayer]
    seed: int
    device: torch.device
    fresh_model: Callable[[int], nn.Module]
    """Build a freshly initialised model of the same architecture from a seed (full reset)."""
    activations: list[torch.Tensor | None] = field(default_factory=list)
    """When a method sets ``capture = True``, the loop stores each unit layer's activation of
    the latest training forward here (detached), one entry per unit layer."""

    def generator(self, *parts: object) -> torch.Generator:
        """A generator on the training device seeded from (run seed, *parts): resume-exact."""
        g = torch.Generator(device=self.device)
        g.manual_seed(derived_seed(self.seed, *parts))
        return g


class Method(Protocol):
    every: int
    """after_step cadence: after the run's optimiser steps N, 2N, … (1 = every step)."""
    capture: bool
    """Whether the loop must capture unit activations during training forwards."""
    per_step: bool
    """Whether the method uses the per-step hooks (extra_loss, add_grad, after_step)."""
    packable: bool
    """Whether the method touches only its own run's state (so it can run in a pack)."""
    intervention: bool
    """Whether transfer may apply it once (``intervene``) between pre-training and fine-tuning."""
    busy: ClassVar[dict]
    """Options under which the method acts within a few steps of a tiny run (common tests)."""
    entry_step: bool
    """Whether re-initialised entries should restart Adam's bias correction (per-entry step)."""

    def setup(self, ctx: MethodContext) -> None:
        """Once, before step 0 (and again before a resume loads state). May sync."""

    def on_task_start(self, task: int) -> None:
        """At a boundary, before the task's first optimiser step. May sync."""

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """A loss term added inside the graph before backward. No host sync."""

    def add_grad(self) -> None:
        """After backward, before optimizer.step(): add a penalty's closed-form gradient to the
        parameters' ``.grad`` in place (creating it where None). No host sync. # why: the same
        update as an ``extra_loss`` term, without autograd nodes per parameter (an l2 step at
        batch 64: +28% through autograd, +16% this way)."""

    def after_step(self, step: int, x: torch.Tensor) -> None:
        """After optimizer.step() when ``due(self, step)``; ``x`` is the step's input batch.
        Device ops only: choose with masks, never with .item()."""

    def on_task_end(self, task: int) -> None:
        """At a boundary, after the task's last step and before measurements. May sync."""

    def intervene(self) -> None:
        """Apply the method once, now (transfer: between pre-training and fine-tuning)."""

    def state_dict(self) -> dict:
        """Tensors and numbers needed to resume exactly."""

    def load_state_dict(self, state: dict) -> None: ...


class MethodDefaults:
    """No-op hooks. # why: plain mixin of empty defaults, not a template; each method overrides
    only the hooks it uses."""

    every: int = 1
    capture: bool = False
    per_step: bool = False
    packable: bool = True
    intervention: bool = False
    busy: ClassVar[dict] = {}
    entry_step: bool = False

    def setup(self, ctx: MethodContext) -> None:
        self.ctx_ = ctx

    def on_task_start(self, task: int) -> None:
        pass

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def add_grad(self) -> None:
        pass

    def after_step(self, step: int, x: torch.Tensor) -> None:
        pass

    def on_task_end(self, task: int) -> None:
        pass

    def intervene(self) -> None:
        """Default: what the method does at the start of a new task (task 1, where every reset fires)."""
        self.on_task_start(1)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def due(method: Method, step: int) -> bool:
    """Whether ``method.after_step`` runs after the optimiser step with 0-based index ``step``:
    after the steps N, 2N, 3N, … of the run (N = ``method.every``, steps counted from 1)."""
    return (step + 1) % method.every == 0
