"""``label-permuted`` (Elsayed & Mahmood 2024, UPGD): the same images, their classes renamed per task.

Task t draws a permutation π_t of the C classes from (seed, t) and relabels every example
y ↦ π_t(y), training and test sets alike: a bijection of classes, not a re-draw per image (that
is ``random-labels``), so the task stays learnable and generalisable, but the output layer's
mapping must be relearned. Task 0 is permuted too (the reference code permutes at its first step).

Departure from the reference (UPGD's ``LabelPermuted*`` streams): those are online streams that
re-permute every ``change_freq`` samples (2,500 on EMNIST, CIFAR-10 and mini-ImageNet) of batch-1
SGD; here a task is ``environment.epochs_per_task`` epochs over the (subset) training set, so
``samples_per_class`` × C × epochs_per_task = samples per task sets the same budget. The
reference composes each new permutation with the current labels (π_t ∘ … ∘ π_1); π_t here is drawn
afresh — the same distribution (uniform over permutations), but a pure function of (seed, t).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.seeding import generator
from plasticlab.tasks.base import ClassificationFamily, Task


def class_permutation(seed: int, t: int, classes: int) -> torch.Tensor:
    """π_t: a permutation of ``range(classes)``, a pure function of (seed, t, classes)."""
    return torch.randperm(classes, generator=generator(seed, "label-permuted", t))


@registry.register(registry.FAMILIES, "label-permuted")
@dataclass
class LabelPermuted(ClassificationFamily):
    """Config of the ``label-permuted`` family."""

    family: str = "label-permuted"
    count: int = field(default=10, metadata=bounds(ge=1))
    """Number of tasks."""
    kinds = ("abrupt", "output-interpolation", "task-sampling")
    """Inputs never change, so input interpolation would be the identity."""

    def make_task(self, base, seed: int, t: int) -> Task:
        pi = class_permutation(seed, t, base.classes).to(base.y_train.device)
        return Task(t, base.x_train, pi[base.y_train], base.x_test, pi[base.y_test])
