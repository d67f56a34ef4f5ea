"""The phase schedule: which task (or pair of tasks, and α) is trained at which optimiser step.

A run is a list of phases counted in optimiser steps, so fractional epochs are exact:

* a ``task`` phase trains task t alone (α = null);
* a ``transition`` phase (gradual environments) trains a mixture of task t−1 and task t at a
  fixed α; a transition is a run of such phases with α = δ, 2δ, …, 1−δ (output interpolation
  ``via-uniform``: α = δ/2, δ, …, 1−δ/2, see ``transition_alphas``).

Task t's measurement happens at the end of its ``task`` phase, where plasticity is judged.
Lengths (S = steps per epoch, E = ``epochs_per_task``, k = ``transition.length``):

* pure phase of task t ≥ 1: P = round(E·S); transition into task t: R = round(k·E·S), split into
  m = 1/δ − 1 levels (2/δ − 1 for ``via-uniform``) of ⌊jR/m⌋ − ⌊(j−1)R/m⌋ steps (j = 1…m);
* with ``compute_matched`` every task gets P + R steps in every kind: abrupt tasks are trained
  P + R steps, and gradual task 0 (no predecessor) gets P + R pure steps. Totals are then equal
  to the step. Without it, abrupt and task 0 get P steps.

Tasks of different sizes (a family with ``task_size``, e.g. ``class-incremental``) have their own
S_t = ⌊N_t/B⌋, so P, R and the epoch rows of task t count in task t's epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from plasticlab.config import EnvironmentConfig
from plasticlab.registry import UserError


@dataclass(frozen=True)
class Phase:
    """A stretch of ``steps`` optimiser steps starting at global step ``start``."""

    task: int
    """The task being learned (the new task during a transition)."""
    kind: Literal["task", "transition"]
    alpha: float | None
    """Mixing coefficient towards ``task`` during a transition (None in a task phase)."""
    start: int
    steps: int

    @property
    def end(self) -> int:
        return self.start + self.steps

    @property
    def old(self) -> int | None:
        """The previous task during a transition."""
        return self.task - 1 if self.kind == "transition" else None


def alpha_grid(step: float) -> list[float]:
    """α levels δ, 2δ, …, 1−δ for granularity δ (1/δ must be a whole number ≥ 2)."""
    n = round(1.0 / step)
    if step <= 0 or step >= 1 or abs(n * step - 1.0) > 1e-6:
        raise UserError(f"config: environment.transition.step: {step} must be in (0, 1) with 1/step a whole number "
                        "(e.g. 0.5, 0.25, 0.1, 0.05)")
    return [round(j * step, 12) for j in range(1, n)]


def transition_alphas(env: EnvironmentConfig) -> list[float]:
    """The α levels of a transition: ``alpha_grid(δ)``; output interpolation ``via-uniform``:
    ``alpha_grid(δ/2)``, so each of its halves (old one-hot → uniform, uniform → new one-hot) moves
    the smoothing factor in steps of δ, as the released code does (envs/kinds.py)."""
    step = env.transition.step
    if env.kind == "output-interpolation" and env.transition.mode == "via-uniform":
        alpha_grid(step)  # why: validate δ itself, so an error names the configured value
        return alpha_grid(step / 2)
    return alpha_grid(step)


def split_steps(total: int, parts: int) -> list[int]:
    """Split ``total`` steps into ``parts`` near-equal whole parts that sum to ``total``."""
    return [(j * total) // parts - ((j - 1) * total) // parts for j in range(1, parts + 1)]


@dataclass(frozen=True)
class Schedule:
    phases: tuple[Phase, ...]
    steps_per_epoch: int
    """S of every task (task 0's when tasks differ in size)."""
    tasks: int
    epoch_steps: tuple[int, ...] = ()
    """S_t per task when tasks differ in size; empty when every task has ``steps_per_epoch``."""
    dropped: tuple[tuple[int, float], ...] = ()
    """(task, α) of every transition level that got no step: a transition of R steps holds at
    most R of its m levels (``dropped_levels_note`` says so in one line)."""

    def epoch_length(self, task: int) -> int:
        """Steps per epoch of ``task``."""
        return self.epoch_steps[task] if self.epoch_steps else self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.phases[-1].end if self.phases else 0

    def task_phase(self, task: int) -> Phase:
        """The pure phase of ``task`` (its measurement point is this phase's end)."""
        return next(p for p in self.phases if p.task == task and p.kind == "task")

    def first_step(self, task: int) -> int:
        return next(p.start for p in self.phases if p.task == task)

    def task_at(self, step: int) -> int:
        """The task being learned at the last completed step (``step`` steps done)."""
        last = max(step - 1, 0)
        return next((p.task for p in self.phases if p.start <= last < p.end),
                    self.phases[-1].task if self.phases else 0)


def build_schedule(env: EnvironmentConfig, tasks: int, steps_per_epoch: int | Sequence[int]) -> Schedule:
    """The phases of a run of ``tasks`` tasks (module docstring gives the arithmetic).

    ``steps_per_epoch``: S of every task, or S_t per task (a sequence of ``tasks`` values).
    """
    spe = [steps_per_epoch] * tasks if isinstance(steps_per_epoch, int) else list(steps_per_epoch)
    gradual = env.kind != "abrupt"
    alphas = transition_alphas(env) if gradual else []
    phases: list[Phase] = []
    dropped: list[tuple[int, float]] = []
    at = 0
    for t in range(tasks):
        pure = max(1, round(env.epochs_per_task * spe[t]))
        trans = round(env.transition.length * env.epochs_per_task * spe[t])
        if gradual and t > 0:
            for a, n in zip(alphas, split_steps(trans, len(alphas)), strict=True):
                if n > 0:
                    phases.append(Phase(t, "transition", a, at, n))
                    at += n
                else:
                    dropped.append((t, a))
            n = pure
        elif env.compute_matched:
            n = pure + trans
        else:
            n = pure
        phases.append(Phase(t, "task", None, at, n))
        at += n
    varied = () if len(set(spe)) <= 1 else tuple(spe)
    return Schedule(tuple(phases), spe[0] if spe else 1, tasks, varied, tuple(dropped))


def dropped_levels_note(schedule: Schedule) -> str | None:
    """One line when some transition has fewer steps than α levels (those levels get no step), else None."""
    if not schedule.dropped:
        return None
    tasks = sorted({t for t, _ in schedule.dropped})
    first = tasks[0]
    alphas = [a for t, a in schedule.dropped if t == first]
    kept = [p for p in schedule.phases if p.task == first and p.kind == "transition"]
    n = len(tasks) - 1
    more = f" (and into {n} more task{'s' if n > 1 else ''})" if n else ""
    shown = ", ".join(f"{a:g}" for a in alphas[:4]) + (", …" if len(alphas) > 4 else "")
    return (f"environment.transition: the transition into task {first}{more} has {sum(p.steps for p in kept)} steps "
            f"for {len(kept) + len(alphas)} α levels, so {len(alphas)} levels get no step (α = {shown}); lengthen "
            "transition.length or epochs_per_task, or use a coarser transition.step")


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches per epoch: ⌊N/B⌋ (every batch has exactly B examples; the remainder of an
    epoch's shuffle is dropped and a different remainder is drawn next epoch)."""
    if batch_size > n_train:
        raise UserError(f"config: optim.batch_size={batch_size} is larger than the training set ({n_train}); "
                        f"lower it to at most {n_train}")
    return n_train // batch_size


def describe(schedule: Schedule) -> str:
    """A text table of the phases (``plasticlab run --dry-run``)."""
    rows = [f"{'task':>5} {'phase':<10} {'alpha':>6} {'start':>9} {'steps':>8} {'epochs':>8}"]
    for p in schedule.phases:
        a = "-" if p.alpha is None else f"{p.alpha:.3g}"
        rows.append(f"{p.task:>5} {p.kind:<10} {a:>6} {p.start:>9} {p.steps:>8} "
                    f"{p.steps / schedule.epoch_length(p.task):>8.3g}")
    if schedule.epoch_steps:
        rows.append(f"total steps {schedule.total_steps} ({min(schedule.epoch_steps)}–{max(schedule.epoch_steps)} "
                    "steps per epoch: tasks differ in size)")
    else:
        rows.append(f"total steps {schedule.total_steps} ({schedule.steps_per_epoch} steps per epoch, "
                    f"{math.ceil(schedule.total_steps / schedule.steps_per_epoch)} epochs)")
    note = dropped_levels_note(schedule)
    return "\n".join(rows + ([f"note: {note}"] if note else []))
