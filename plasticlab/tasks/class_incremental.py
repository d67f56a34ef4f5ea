"""``class-incremental``: every task adds new classes; the network is trained and judged on all classes seen so far.

Source: Dohare et al., "Loss of plasticity in deep continual learning", Nature 632 (2024),
class-incremental CIFAR-100 (reference code ``shibhansh/loss-of-plasticity``,
``lop/incremental_cifar``): 5 classes at first, 5 more every 200 epochs until all 100 are in;
each task trains on all training examples of the classes seen so far and is evaluated on their
test examples; the network has one output per class of the data set and the outputs of classes
not yet seen are left out of the prediction.

Definition. The class order is a permutation of the data set's C classes drawn from
(seed, "order"). Task t has seen n_t = min((t + 1)·c, C) classes (c = ``classes_per_task``): its
training set is every base training example of the first n_t classes of the order (in base order),
its test set every base test example of those classes. Labels are renamed to their position in
the order, so output unit j always stands for the j-th class drawn and the seen classes are
outputs 0…n_t − 1. Masking: the logits of outputs ≥ n_t are set to −∞ before the softmax
(cross-entropy) and the argmax (accuracy) — the same as the reference's keeping only the seen
classes' outputs. Tasks therefore grow: task t has its own size N_t and its own epochs
(S_t = ⌊N_t/B⌋ steps), declared through ``task_size``.

Targets are (N, 2) integer rows (class, n_t): each example carries its task's number of seen
classes, so the loss masks without knowing the task. Only ``abrupt`` environments fit (blending
example i across tasks needs tasks whose example i agree). The fused step paths (compiled whole
step, packed runs) compute plain cross-entropy, so ``cross_entropy = False``.

Departures from the reference: the reference first trains on 5 classes and grows by 5 (c fixed
here too) with early stopping on a validation split, data augmentation and a ResNet-18 — the
data, model, augmentation and optimiser are the run's config; no early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.registry import UserError
from plasticlab.seeding import generator
from plasticlab.tasks.base import ClassificationFamily, Task

NAME = "class-incremental"


def class_rank(seed: int, classes: int) -> torch.Tensor:
    """rank[c] = position of class c in the order drawn from (seed, "order")."""
    order = torch.randperm(classes, generator=generator(seed, NAME, "order"))
    return torch.argsort(order)


def masked_logits(out: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """``out`` (B, C) with the logits of outputs ≥ seen (B,) set to −∞."""
    cols = torch.arange(out.shape[-1], device=out.device)
    return out.float().masked_fill(cols >= seen.unsqueeze(-1), float("-inf"))


def masked_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """Cross-entropy over the seen classes of each example; (mean loss, correct, n) like ``classification_loss``."""
    logits = masked_logits(model(x), target[:, 1])
    y = target[:, 0]
    return F.cross_entropy(logits, y), (logits.argmax(-1) == y).sum(), x.shape[0]


@torch.no_grad()
def masked_sums(model: nn.Module, x: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(Σ loss, Σ correct) over (x, target) in eval chunks, on the device (no sync)."""
    total = torch.zeros(2, device=x.device)
    for i in range(0, x.shape[0], batch_size):
        loss, correct, n = masked_loss(model, x[i : i + batch_size], target[i : i + batch_size])
        total += torch.stack([loss * n, correct.float()])
    return total


@registry.register(registry.FAMILIES, NAME)
@dataclass
class ClassIncremental(ClassificationFamily):
    """Config of the ``class-incremental`` family (defaults: Dohare et al.'s CIFAR-100 increments)."""

    family: str = NAME
    count: int = field(default=20, metadata=bounds(ge=1))
    """Number of tasks; count × classes_per_task ≤ the data set's classes."""
    classes_per_task: int = field(default=5, metadata=bounds(ge=1))
    """c: classes added by every task (task 0 has c classes)."""
    cross_entropy = False
    kinds = ("abrupt",)

    def seen(self, base, t: int) -> int:
        """n_t: classes seen at task t (tasks beyond the run, e.g. probes, see all)."""
        if self.count * self.classes_per_task > base.classes:
            raise UserError(f"config: tasks.count × tasks.classes_per_task = {self.count * self.classes_per_task} "
                            f"exceeds the {base.classes} classes of the data; lower one of them")
        return min((t + 1) * self.classes_per_task, base.classes)

    def task_size(self, base, seed: int, t: int) -> int:
        """N_t: base training examples of the first n_t classes of the order."""
        rank = class_rank(seed, base.classes).to(base.y_train.device)
        return int((rank[base.y_train] < self.seen(base, t)).sum())  # SYNC: once per task at setup

    def make_task(self, base, seed: int, t: int) -> Task:
        n = self.seen(base, t)
        rank = class_rank(seed, base.classes).to(base.y_train.device)

        def subset(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            r = rank[y]
            keep = (r < n).nonzero().squeeze(1)
            return x[keep], torch.stack([r[keep], torch.full_like(keep, n)], dim=1)

        return Task(t, *subset(base.x_train, base.y_train), *subset(base.x_test, base.y_test))

    def loss(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor):
        return masked_loss(model, x, target)

    def measure(self, model: nn.Module, task: Task, batch_size: int) -> dict:
        """``train_*`` on the seen classes' training examples, ``test_*`` on their test examples,
        both with the unseen outputs masked. One host sync."""
        sums = torch.cat([masked_sums(model, task.x_train, task.y_train, batch_size),
                          masked_sums(model, task.x_test, task.y_test, batch_size)])
        tl, tc, vl, vc = sums.tolist()  # SYNC: once per measurement
        n, m = task.n_train, max(task.x_test.shape[0], 1)
        return {"train_loss": tl / n, "train_acc": tc / n, "test_loss": vl / m, "test_acc": vc / m}
