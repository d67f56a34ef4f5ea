"""Bring your own model and task stream: a small conv net with GroupNorm on a label-noise stream.

Nothing here imports plasticlab: the config names these callables by path, or the Python API
takes them directly (docs/custom.md)::

    plasticlab run examples/label_noise.yaml
    plasticlab run --set model.name=custom --set model.factory=examples.label_noise:make_model \\
        --set tasks.family=custom --set tasks.factory=examples.label_noise:LabelNoise

    import plasticlab
    from examples.label_noise import LabelNoise, make_model
    plasticlab.run("examples/label_noise.yaml", model=make_model, tasks=LabelNoise)

The stream: task t is the ``data:`` training images with a fraction ``noise`` of their labels
replaced by labels drawn uniformly from the other classes, the examples and labels drawn from
(seed, t); the test set is the clean test set. Every task re-draws which labels are wrong, so the
network must keep un-learning memorised noise while the clean signal stays the same:
``train_acc`` measures memorisation, ``test_acc`` generalisation.
"""

from __future__ import annotations

import torch
from torch import nn


def make_model(input_shape: tuple[int, ...], n_outputs: int, *, width: int = 16, groups: int = 4) -> nn.Module:
    """Factory called by plasticlab as ``make_model(input_shape, n_outputs, **model.kwargs)``."""
    return SmallConvNet(input_shape[0], n_outputs, width=width, groups=groups)


class SmallConvNet(nn.Module):
    """conv3×3 → GroupNorm → ReLU → conv3×3 (stride 2) → GroupNorm → ReLU → global average → linear.

    Plain PyTorch with PyTorch's default initialisation (``reset_parameters``), which is where
    plasticlab reads the scale to re-draw a unit from.
    """

    def __init__(self, channels: int, n_outputs: int, *, width: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.norm2 = nn.GroupNorm(groups, 2 * width)
        self.act1, self.act2 = nn.ReLU(), nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.norm1(self.conv1(x)))
        h = self.act2(self.norm2(self.conv2(h)))
        return self.head(self.pool(h).flatten(1))


class LabelNoise:
    """Task stream called by plasticlab as ``LabelNoise(data, **tasks.kwargs)``.

    Args:
        data: the run's dataset (``x_train``, ``y_train``, ``x_test``, ``y_test`` tensors on the
            run's device, ``classes``).
        noise: share of training labels that are wrong in each task, in [0, 1].
    """

    kinds = ("abrupt", "output-interpolation", "task-sampling")
    """Every task has the same images in the same order, so the gradual kinds that blend targets
    or mix examples of two tasks apply (input interpolation would blend an image with itself)."""

    def __init__(self, data, *, noise: float = 0.25):
        if not 0 <= noise <= 1:
            raise ValueError(f"noise must be in [0, 1], got {noise}")
        self.data, self.noise = data, noise

    def task(self, seed: int, t: int):
        """(x_train, noisy y_train, x_test, y_test) of task t: a pure function of (seed, t)."""
        d = self.data
        g = torch.Generator().manual_seed(1_000_003 * seed + t)  # task t's own random stream
        n, c = d.y_train.shape[0], d.classes
        wrong = torch.rand(n, generator=g) < self.noise
        shift = torch.randint(1, c, (n,), generator=g)  # a label other than the true one
        y = torch.where(wrong.to(d.y_train.device), (d.y_train + shift.to(d.y_train.device)) % c, d.y_train)
        return d.x_train, y, d.x_test, d.y_test
