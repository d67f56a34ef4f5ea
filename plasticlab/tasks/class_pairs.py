"""``class-pairs`` (Dohare et al. 2024, continual ImageNet): task t is binary classification
between two classes of the dataset, relabelled 0 and 1, on those classes' own examples.

The classes are visited in one order drawn from the seed: a permutation σ of the C classes,
task t classifying σ[2j] (label 0) against σ[2j+1] (label 1) with j = t mod ⌊C/2⌋, so every
class is used once per ⌊C/2⌋ tasks and the same pairs come back in the same order after that
(Dohare's ``class_order``, repeated). Task t's training and test sets are the base examples of
its two classes (in base order), so tasks have their own examples; their sizes (``task_size``)
agree when the data is class-balanced (``data.samples_per_class``).

Dohare's setting (``lop/imagenet``): ImageNet 32×32 (1,000 classes, 500 pairs), 600 training and
100 test images per class, 2,000 tasks of 250 epochs, batch 100, SGD with momentum 0.9, the output
layer zeroed at each task start. Departures: the 100 test images per class are 100 held-out
*training* images in Dohare's files; here the test set is the dataset's own (``imagenet32``'s
validation images, 50 per class), and the recipe re-initialises the head (``head-reset``)
instead of zeroing it. Only abrupt environments apply: the tasks share no examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.registry import UserError
from plasticlab.seeding import generator
from plasticlab.tasks.base import ClassificationFamily, Task


def class_order(seed: int, classes: int) -> torch.Tensor:
    """σ: the order in which the classes are paired, a pure function of (seed, classes)."""
    return torch.randperm(classes, generator=generator(seed, "class-pairs"))


def task_classes(seed: int, t: int, classes: int) -> tuple[int, int]:
    """(class labelled 0, class labelled 1) of task t."""
    if classes < 2:
        raise UserError(f"config: tasks.family=class-pairs needs at least 2 classes, the data has {classes}")
    j = t % (classes // 2)
    order = class_order(seed, classes)
    return int(order[2 * j]), int(order[2 * j + 1])


def pair_examples(y: torch.Tensor, pair: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices of the pair's examples in ``y``, their 0/1 labels)."""
    idx = torch.nonzero((y == pair[0]) | (y == pair[1])).flatten()  # SYNC: once per task build
    return idx, (y[idx] == pair[1]).long()


@registry.register(registry.FAMILIES, "class-pairs")
@dataclass
class ClassPairs(ClassificationFamily):
    """Config of the ``class-pairs`` family."""

    family: str = "class-pairs"
    count: int = field(default=10, metadata=bounds(ge=1))
    """Number of tasks (past ⌊C/2⌋ the pairs repeat in the same order)."""
    kinds = ("abrupt",)

    def make_task(self, base, seed: int, t: int) -> Task:
        pair = task_classes(seed, t, base.classes)
        tr, y_tr = pair_examples(base.y_train, pair)
        te, y_te = pair_examples(base.y_test, pair)
        if tr.numel() == 0:
            raise UserError(f"tasks.family=class-pairs: task {t}'s classes {pair} have no training examples")
        return Task(t, base.x_train[tr], y_tr, base.x_test[te], y_te)

    def task_size(self, base, seed: int, t: int) -> int:
        """Training examples of task t: the two classes' counts (counted once per base)."""
        key = (id(base.y_train), base.y_train.shape[0])  # not the tensor: configs get deep-copied
        cached = getattr(self, "counts_", None)
        if cached is None or cached[0] != key:
            cached = (key, torch.bincount(base.y_train, minlength=base.classes).tolist())  # SYNC: once
            self.counts_ = cached
        a, b = task_classes(seed, t, base.classes)
        return cached[1][a] + cached[1][b]

    def n_outputs(self, base) -> int:
        return 2
