"""``slowly-changing-regression``: Dohare et al.'s online regression problem with slowly flipping input bits.

Source: Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton, "Loss of plasticity in deep
continual learning", Nature 632 (2024), Methods "Slowly-changing regression" (reference code
``shibhansh/loss-of-plasticity``, ``lop/slowly_changing_regression``, ``lop/nets/fix_ltu_net.py``).

Definition. An input is m binary bits (``inputs``, default 20). The first f (``flipping``,
default 15) are *slow* bits: constant for T examples (``examples``, default 10,000), then one of
them, chosen uniformly, flips. The other m − f bits are drawn uniformly for every example. The
target is a fixed random network with one hidden layer of n linear threshold units
(``target_hidden``, default 100): weights and biases uniform in {−1, +1}; unit i outputs 1 when
its pre-activation exceeds θ_i = β(m + 1) − S_i (S_i = number of −1 among its m + 1 incoming
weights including the bias, β = ``beta`` = 0.7) and 0 otherwise; the output is a {−1, +1}
weighted sum of the units plus a {−1, +1} bias. The learner sees each example once (batch 1,
one pass) and is trained on the squared error.

Task t is the t-th period of T examples: the slow bits after t flips, T fresh random examples.
Everything is a pure function of (seed, t): the target network from (seed, "target"), the
initial slow bits from (seed, "bits"), the bit flipped at period k ≥ 1 from (seed, k), the random
bits of task t from (seed, t).

Measures (the paper's error: squared error binned over examples). With ``batch_size: 1`` and
``epochs_per_task: 1`` the ``epoch`` row's ``train_loss`` is the paper's binned error with bins of
one period: the mean over the task's T examples of the squared error of each prediction made
*before* the update on that example. ``task_end`` rows add ``train_loss`` (squared error after the
task on its T examples) and ``test_loss`` — the exact expected squared error on the task's input
distribution (every one of the 2^(m−f) settings of the random bits, equally weighted). There is
no accuracy: ``train_acc``/``test_acc`` are null.

Departures from the reference code: the reference draws its data once per run as a file; here it
is generated per task from (seed, t). The reference's threshold counts negative weights as
(m − Σw + b)/2 (the bias enters with the wrong sign); this uses the paper's count, the number of
−1 among the m + 1 incoming weights. The reference's default (``flip_one`` unset) redraws all
slow bits every T examples; ``flip: one`` (default) flips one bit as the paper describes, and
``flip: redraw`` gives the reference default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.registry import UserError
from plasticlab.seeding import generator
from plasticlab.tasks.base import Task

NAME = "slowly-changing-regression"


@dataclass
class TargetNet:
    """The fixed LTU target network and where tensors live (what ``prepare`` returns)."""

    w1: torch.Tensor
    """(n, m) input weights in {−1, +1}."""
    b1: torch.Tensor
    theta: torch.Tensor
    """(n,) LTU thresholds β(m + 1) − S_i."""
    w2: torch.Tensor
    """(n,) output weights in {−1, +1}."""
    b2: torch.Tensor
    device: torch.device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Targets (N,) of binary inputs (N, m)."""
        h = (x @ self.w1.T + self.b1 > self.theta).float()
        return h @ self.w2 + self.b2


def signs(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Uniform {−1, +1} values."""
    return torch.randint(2, shape, generator=g).float() * 2 - 1


def target_net(seed: int, inputs: int, hidden: int, beta: float, device) -> TargetNet:
    """The target network of ``seed`` (a pure function of its arguments)."""
    g = generator(seed, NAME, "target")
    w1, b1, w2, b2 = signs(g, hidden, inputs), signs(g, hidden), signs(g, hidden), signs(g, 1)
    negatives = (w1 < 0).sum(1).float() + (b1 < 0).float()
    theta = beta * (inputs + 1) - negatives
    d = torch.device(device)
    return TargetNet(w1.to(d), b1.to(d), theta.to(d), w2.to(d), b2.to(d), d)


def slow_bits(seed: int, t: int, flipping: int, flip: str) -> torch.Tensor:
    """The slow bits (f,) during period t: initial bits from (seed, "bits"), then per period
    k = 1…t one uniformly chosen bit flipped (``one``) or all bits redrawn (``redraw``) from (seed, k)."""
    if flip == "redraw":
        g = generator(seed, NAME, "bits") if t == 0 else generator(seed, NAME, "flip", t)
        return torch.randint(2, (flipping,), generator=g).float()
    bits = torch.randint(2, (flipping,), generator=generator(seed, NAME, "bits")).float()
    for k in range(1, t + 1):
        i = torch.randint(flipping, (1,), generator=generator(seed, NAME, "flip", k))
        bits[i] = 1 - bits[i]
    return bits


def all_settings(n: int) -> torch.Tensor:
    """Every binary vector of length n, (2^n, n)."""
    codes = torch.arange(2**n).unsqueeze(1)
    return ((codes >> torch.arange(n - 1, -1, -1)) & 1).float()


def regression_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """Mean squared error of the model's single output; (loss, 0 correct, n) like the classification loss."""
    out = model(x).float().squeeze(-1)
    loss = F.mse_loss(out, target)
    return loss, torch.zeros((), device=x.device, dtype=torch.int64), x.shape[0]


@torch.no_grad()
def squared_error_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Σ (model(x) − y)² over (x, y) in eval chunks, on the device (no sync)."""
    total = torch.zeros((), device=x.device)
    for i in range(0, x.shape[0], batch_size):
        out = model(x[i : i + batch_size]).float().squeeze(-1)
        total += ((out - y[i : i + batch_size]) ** 2).sum()
    return total


@registry.register(registry.FAMILIES, NAME)
@dataclass
class SlowlyChangingRegression:
    """Config of the ``slowly-changing-regression`` family (defaults: Dohare et al. 2024)."""

    family: str = NAME
    count: int = field(default=100, metadata=bounds(ge=1))
    """Number of tasks (periods of ``examples`` examples; the paper's 1M examples = 100)."""
    inputs: int = field(default=20, metadata=bounds(ge=1))
    """m: input bits."""
    flipping: int = field(default=15, metadata=bounds(ge=1))
    """f: slow bits (the first f); the other m − f are random per example (m − f ≤ 16)."""
    examples: int = field(default=10000, metadata=bounds(ge=1))
    """T: examples per period (task)."""
    target_hidden: int = field(default=100, metadata=bounds(ge=1))
    """LTU units of the target network."""
    beta: float = field(default=0.7, metadata=bounds(ge=0, le=1))
    """β of the LTU thresholds."""
    flip: Literal["one", "redraw"] = "one"
    """Per period: flip one slow bit (the paper) or redraw all slow bits (the reference code's default)."""

    uses_data = False
    cross_entropy = False
    accuracy = False
    """A regression: rows carry ``train_acc``/``test_acc`` null."""
    kinds = ("abrupt",)

    def __post_init__(self) -> None:
        if self.flipping > self.inputs:
            raise UserError(f"config: tasks.flipping={self.flipping} exceeds tasks.inputs={self.inputs}; "
                            "lower it to at most tasks.inputs")
        if self.inputs - self.flipping > 16:
            raise UserError(f"config: tasks.inputs - tasks.flipping = {self.inputs - self.flipping} random bits; "
                            "at most 16 (the test set enumerates every setting)")

    def prepare(self, seed: int, device) -> TargetNet:
        return target_net(seed, self.inputs, self.target_hidden, self.beta, device)

    def n_train(self, base: TargetNet) -> int:
        return self.examples

    def n_outputs(self, base: TargetNet) -> int:
        return 1

    def input_shape(self, base: TargetNet) -> tuple[int, ...]:
        return (self.inputs,)

    def loss(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor):
        return regression_loss(model, x, target)

    def inputs_of(self, bits: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """Inputs (N, m): the slow bits followed by each row of the free bits (N, m − f)."""
        return torch.cat([bits.expand(free.shape[0], -1), free], dim=1)

    def make_task(self, base: TargetNet, seed: int, t: int) -> Task:
        bits = slow_bits(seed, t, self.flipping, self.flip)
        free = torch.randint(2, (self.examples, self.inputs - self.flipping),
                             generator=generator(seed, NAME, "inputs", t)).float()
        x = self.inputs_of(bits, free).to(base.device)
        x_test = self.inputs_of(bits, all_settings(self.inputs - self.flipping)).to(base.device)
        return Task(t, x, base(x), x_test, base(x_test))

    def measure(self, model: nn.Module, task: Task, batch_size: int) -> dict:
        """``train_loss``: mean squared error on the task's T examples; ``test_loss``: on every
        setting of the random bits (the exact expected error). No accuracy. One host sync."""
        sums = torch.stack([squared_error_sum(model, task.x_train, task.y_train, batch_size),
                            squared_error_sum(model, task.x_test, task.y_test, batch_size)])
        train, test = sums.tolist()  # SYNC: once per measurement
        return {"train_loss": train / task.n_train, "train_acc": None,
                "test_loss": test / task.x_test.shape[0], "test_acc": None}
