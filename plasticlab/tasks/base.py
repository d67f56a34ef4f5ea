"""What a task is, and the classification loss and measures shared by the image families.

A family (registered in ``registry.FAMILIES``) is a dataclass whose fields are its config
section (``family``, ``count`` and its own options). ``make_task(base, seed, t)`` returns task t
as device tensors. The image families index them like the base training set (example i of every
task comes from base example i), which the gradual environments that blend example i of two
tasks need; a family whose tasks hold their own examples lists only the kinds that fit in
``kinds``, and one whose tasks differ in size declares ``task_size(base, seed, t)`` (the engine
then gives each task its own epochs; ``class-incremental``). Optional declarations:
``uses_data``, ``cross_entropy`` (below), ``accuracy = False`` (a regression: no ``*_acc``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Task:
    """Task ``index`` as device tensors. Targets are class ids (N,), token ids (N, L), or what the
    family's own loss reads (``class-incremental``: (class, classes seen) rows (N, 2);
    ``slowly-changing-regression``: real values (N,))."""

    index: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]


def classification_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """Cross-entropy of ``model(x)`` against class ids (B,) or probabilities (B, C).

    Returns:
        (mean loss, number correct, number of examples) — all device tensors / ints, no sync.
        With probability targets, "correct" compares with the target's argmax.
    """
    out = model(x)
    loss = F.cross_entropy(out.float(), target)
    hard = target.argmax(-1) if target.is_floating_point() else target
    correct = (out.argmax(-1) == hard).sum()
    return loss, correct, x.shape[0]


@torch.no_grad()
def evaluate_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int):
    """Summed loss and correct count over (x, y) in eval chunks, as device tensors (no sync)."""
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for i in range(0, x.shape[0], batch_size):
        out = model(x[i : i + batch_size]).float()
        loss += F.cross_entropy(out, y[i : i + batch_size], reduction="sum")
        correct += (out.argmax(-1) == y[i : i + batch_size]).sum()
    return loss, correct


class ClassificationFamily:
    """Shared behaviour of the image classification families.
    # why: a tiny mixin with three functions that every image family needs in the same form."""

    uses_data = True
    """The family reads the ``data:`` dataset (language families generate their own)."""
    cross_entropy = True
    """The family's loss is ``classification_loss`` (cross-entropy of logits), so the fused step
    paths (compiled whole step, packed runs) may compute it themselves. A subclass that
    overrides ``loss`` sets this to False."""

    def loss(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor):
        return classification_loss(model, x, target)

    def measure(self, model: nn.Module, task: Task, batch_size: int) -> dict:
        """``train_loss``/``train_acc`` on the task's whole training set, ``test_*`` on its test
        set (None when the family has no meaningful test set). One host sync."""
        tl, tc = evaluate_classifier(model, task.x_train, task.y_train, batch_size)
        vals = [tl, tc]
        if task.x_test is not None:
            vl, vc = evaluate_classifier(model, task.x_test, task.y_test, batch_size)
            vals += [vl, vc]
        got = torch.stack([v.double() for v in vals]).tolist()  # SYNC: once per measurement
        n = task.n_train
        out = {"train_loss": got[0] / n, "train_acc": got[1] / n, "test_loss": None, "test_acc": None}
        if task.x_test is not None:
            m = task.x_test.shape[0]
            out.update(test_loss=got[2] / m, test_acc=got[3] / m)
        return out

    def n_outputs(self, base) -> int:
        return base.classes

    def input_shape(self, base) -> tuple[int, ...]:
        return tuple(base.x_train.shape[1:])
