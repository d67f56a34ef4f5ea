"""User code for tests/test_custom.py, written as a user would: it imports torch, never plasticlab."""

import torch
from torch import nn


class TwoLayerNet(nn.Module):
    """A plain MLP without unit_layers(): flatten → Linear → ReLU → Linear → ReLU → Linear."""

    def __init__(self, n_in: int, hidden: int, n_out: int):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(n_in, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, n_out)
        self.act1, self.act2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x.flatten(1))))))


def make_mlp(input_shape, n_outputs, hidden=16):
    n_in = 1
    for d in input_shape:
        n_in *= d
    return TwoLayerNet(n_in, hidden, n_outputs)


def make_normal_mlp(input_shape, n_outputs, hidden=32, declare=False):
    """make_mlp with its own init: every weight ~ N(0, 0.02²), biases 0 (as GPT-2 does).
    ``declare``: the module says so itself (``unit_init``), as docs/models.md describes."""
    model = make_mlp(input_shape, n_outputs, hidden)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
    if declare:
        model.unit_init = {"fc1.weight": ("normal", 0.02), "fc2.weight": ("normal", 0.02)}
    return model


def not_a_module(input_shape, n_outputs):
    return "a string"


def wrong_outputs(input_shape, n_outputs):
    return make_mlp(input_shape, n_outputs + 1)


def wrong_inputs(input_shape, n_outputs):
    return nn.Linear(3, n_outputs)


def no_arguments():
    return nn.Identity()


NOT_CALLABLE = 3


class FirstHalf:
    """Task t: the first half of the training set, labels rotated by t (every task the same images)."""

    kinds = ("abrupt", "task-sampling")

    def __init__(self, data, shift=1):
        self.data, self.shift = data, shift

    def task(self, seed, t):
        d = self.data
        n = d.x_train.shape[0] // 2
        return d.x_train[:n], (d.y_train[:n] + self.shift * t) % d.classes, d.x_test, d.y_test


class SquaredError(FirstHalf):
    """FirstHalf with its own loss: mean squared error of the outputs to the one-hot labels."""

    def loss(self, out, y):
        return ((out - nn.functional.one_hot(y, out.shape[1]).float()) ** 2).sum(1).mean()

    def correct(self, out, y):
        return (out.argmax(1) == y).sum()


class NoTask:
    def __init__(self, data):
        pass


class BadTask(FirstHalf):
    def task(self, seed, t):
        return self.data.x_train


class GrowingTasks(FirstHalf):
    def task(self, seed, t):
        n = 100 * (t + 1)
        return self.data.x_train[:n], self.data.y_train[:n]


class LossOnly(FirstHalf):
    def loss(self, out, y):
        return out.sum()


class BadKinds(FirstHalf):
    kinds = ("sideways",)


def module_with_a_broken_import():
    import not_a_real_module_xyz  # noqa: F401

    return torch


class SkipOutput(nn.Module):
    """Units fc1 → ReLU → fc2, but the output is fc2(h) + skip(x): no single Linear is the head."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(n_in, 8), nn.ReLU(), nn.Linear(8, n_out)
        self.skip = nn.Linear(n_in, n_out)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc2(self.act(self.fc1(x))) + self.skip(x)


def make_no_head(input_shape, n_outputs):
    n_in = 1
    for d in input_shape:
        n_in *= d
    return SkipOutput(n_in, n_outputs)
