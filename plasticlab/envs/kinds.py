"""How each environment kind builds a training batch from the phase's task(s).

Every kind trains task t alone in a ``task`` phase. During a ``transition`` phase from task
t−1 ("old") to task t ("new") at coefficient α, over base-example indices ``idx`` (B,):

* ``abrupt`` has no transitions.
* ``input-interpolation``: x = (1−α)·x_old[idx] + α·x_new[idx] — the same base examples under
  both tasks' input transforms (each task's inputs are computed once from the *base* images, so
  nothing is transformed twice); targets are the new task's labels.
* ``output-interpolation``: inputs of the new task, soft targets (probabilities, cross-entropy):
  ``direct``: ỹ = (1−α)·onehot(y_old) + α·onehot(y_new);
  ``via-uniform`` (the released code's path): ỹ = (1−s)·onehot(y) + s·u, u uniform over the C
  classes, on the old labels with s = 2α for α ≤ ½, on the new labels with s = 2−2α for α > ½
  (α = ½ is uniform). Its α levels are δ/2 apart (``schedule.transition_alphas``), so s moves by δ:
  δ, …, 1−δ on the old labels, 1, then 1−δ, …, δ on the new ones — the released code's levels,
  except its first (s = 0: the old one-hot labels again), whose share of the steps the others get.
* ``task-sampling``: the first n_old = ⌊B·(1−α) + ½⌋ examples of the batch come from the old task
  and the other B − n_old from the new one: always exactly B examples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from plasticlab import registry
from plasticlab.envs.schedule import Phase
from plasticlab.tasks.base import Task


def rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` along dim 0. # why: ``index_select`` gathers 2.5× faster than ``t[idx]`` on CPU."""
    return torch.index_select(t, 0, idx)


def pure_batch(task: Task, idx: torch.Tensor):
    return rows(task.x_train, idx), rows(task.y_train, idx)


def interpolate_inputs(x_old: torch.Tensor, x_new: torch.Tensor, alpha: float) -> torch.Tensor:
    """x_α = (1−α)·x_old + α·x_new."""
    return torch.lerp(x_old, x_new, alpha)


def soft_targets(y_old: torch.Tensor, y_new: torch.Tensor, alpha: float, classes: int, mode: str) -> torch.Tensor:
    """Rows of ỹ_α (B, C) that sum to 1 (module docstring gives both paths)."""
    old = F.one_hot(y_old, classes).float()
    new = F.one_hot(y_new, classes).float()
    if mode == "direct":
        return (1 - alpha) * old + alpha * new
    u = torch.full_like(old, 1.0 / classes)
    if alpha <= 0.5:
        return (1 - 2 * alpha) * old + 2 * alpha * u
    return (2 * alpha - 1) * new + (2 - 2 * alpha) * u


def old_count(batch_size: int, alpha: float) -> int:
    """Examples of the old task in a task-sampling batch: round(B·(1−α)), halves rounded up."""
    return math.floor(batch_size * (1 - alpha) + 0.5)


def concat_batches(a, b):
    """Concatenate two (x, y) batches; token targets are right-padded to a common length."""
    (xa, ya), (xb, yb) = a, b
    if xa.ndim == 2 and not xa.is_floating_point() and xa.shape[1] != xb.shape[1]:
        raise ValueError("token inputs of different lengths cannot be mixed")
    return torch.cat([xa, xb]), torch.cat([ya, yb])


class _Environment:
    """# why: the four kinds share their constructor and pure-phase batch; each adds one rule."""

    def __init__(self, *, classes: int, mode: str = "direct"):
        self.classes = classes
        self.mode = mode

    def batch(self, phase: Phase, old: Task | None, new: Task, idx: torch.Tensor):
        if phase.kind == "task":
            return pure_batch(new, idx)
        return self.transition_batch(phase.alpha, old, new, idx)


@registry.register(registry.ENVIRONMENTS, "abrupt")
class Abrupt(_Environment):
    def transition_batch(self, alpha, old, new, idx):
        raise RuntimeError("abrupt environments have no transition phases")


@registry.register(registry.ENVIRONMENTS, "input-interpolation")
class InputInterpolation(_Environment):
    def transition_batch(self, alpha, old, new, idx):
        return interpolate_inputs(rows(old.x_train, idx), rows(new.x_train, idx), alpha), rows(new.y_train, idx)


@registry.register(registry.ENVIRONMENTS, "output-interpolation")
class OutputInterpolation(_Environment):
    def transition_batch(self, alpha, old, new, idx):
        y_old, y_new = rows(old.y_train, idx), rows(new.y_train, idx)
        return rows(new.x_train, idx), soft_targets(y_old, y_new, alpha, self.classes, self.mode)


@registry.register(registry.ENVIRONMENTS, "task-sampling")
class TaskSampling(_Environment):
    def transition_batch(self, alpha, old, new, idx):
        n = old_count(idx.numel(), alpha)
        return concat_batches(pure_batch(old, idx[:n]), pure_batch(new, idx[n:]))
