"""``random-labels`` (Random Image Labeling): a fixed image set whose labels are re-drawn per task.

Task t's labels are a permutation (from (seed, t)) of the base label vector, so every class
keeps its count. Only memorisation is possible, so trainability (``train_acc``) is the measure;
``test_acc``/``test_loss`` are reported as null.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.seeding import generator
from plasticlab.tasks.base import ClassificationFamily, Task


def task_labels(seed: int, t: int, labels: torch.Tensor) -> torch.Tensor:
    """Labels of task t: ``labels`` shuffled by a permutation drawn from (seed, t)."""
    perm = torch.randperm(labels.numel(), generator=generator(seed, "random-labels", t))
    return labels[perm.to(labels.device)]


@registry.register(registry.FAMILIES, "random-labels")
@dataclass
class RandomLabels(ClassificationFamily):
    """Config of the ``random-labels`` family."""

    family: str = "random-labels"
    count: int = field(default=10, metadata=bounds(ge=1))
    """Number of tasks."""
    kinds = ("abrupt", "output-interpolation", "task-sampling")

    def make_task(self, base, seed: int, t: int) -> Task:
        return Task(t, base.x_train, task_labels(seed, t, base.y_train), None, None)
