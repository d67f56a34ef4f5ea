"""``permuted-pixels``: task t applies one fixed pixel permutation to every image (train and test).

The permutation of task t is drawn from (seed, t) alone and acts on the flattened
(C·H·W) input, so channels of a pixel move independently. Labels are the base labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.seeding import generator
from plasticlab.tasks.base import ClassificationFamily, Task


def task_permutation(seed: int, t: int, size: int) -> torch.Tensor:
    """The pixel permutation of task t: a pure function of (seed, t, size)."""
    return torch.randperm(size, generator=generator(seed, "permuted-pixels", t))


def permute(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Apply a permutation of the flattened input to a batch (B, *shape)."""
    return x.flatten(1)[:, perm].view_as(x)


@registry.register(registry.FAMILIES, "permuted-pixels")
@dataclass
class PermutedPixels(ClassificationFamily):
    """Config of the ``permuted-pixels`` family."""

    family: str = "permuted-pixels"
    count: int = field(default=10, metadata=bounds(ge=1))
    """Number of tasks."""
    kinds = ("abrupt", "input-interpolation", "task-sampling")

    def make_task(self, base, seed: int, t: int) -> Task:
        perm = task_permutation(seed, t, base.x_train[0].numel()).to(base.x_train.device)
        return Task(t, permute(base.x_train, perm), base.y_train, permute(base.x_test, perm), base.y_test)
