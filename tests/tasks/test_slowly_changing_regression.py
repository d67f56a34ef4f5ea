import math

import pytest
import torch
from torch import nn

from plasticlab.api import resolve
from plasticlab.engine import loop
from plasticlab.registry import FAMILIES, UserError
from plasticlab.tasks.slowly_changing_regression import TargetNet, all_settings, slow_bits, target_net

SMALL = ["tasks={family: slowly-changing-regression, count: 3, examples: 40}", "model.hidden=[5]",
         "model.norm=none", "optim.name=sgd", "optim.lr=0.01", "optim.batch_size=1",
         "environment.epochs_per_task=1", "environment.compute_matched=false", "diagnostics.probe_size=16"]


def test_ltu_target_on_a_constructed_network():
    # two units over m = 2 inputs, β = 0.5: θ_i = 0.5·3 − (number of −1 among w_i and b_i)
    w1 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    b1 = torch.tensor([-1.0, 1.0])
    net = TargetNet(w1, b1, torch.tensor([1.5 - 1, 1.5 - 1]), torch.tensor([1.0, -1.0]), torch.tensor([1.0]), "cpu")
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # pre-activations: unit 0: −1, 0, 1, 0 → fires (> 0.5) only on [1, 1]; unit 1: 1, 2, 1, 0 → fires on the first three
    assert torch.equal(net(x), torch.tensor([1.0 - 1, 1.0 - 1, 1.0 + 1 - 1, 1.0]))
    t = target_net(3, 20, 100, 0.7, "cpu")
    assert set(t.w1.unique().tolist()) == {-1.0, 1.0} and t.w1.shape == (100, 20)
    negatives = (t.w1 < 0).sum(1) + (t.b1 < 0)
    assert torch.allclose(t.theta, 0.7 * 21 - negatives.float())


def test_one_slow_bit_flips_per_period_and_tasks_are_pure():
    bits = [slow_bits(0, t, 15, "one") for t in range(6)]
    assert all((a != b).sum() == 1 for a, b in zip(bits, bits[1:], strict=False))
    assert torch.equal(slow_bits(0, 5, 15, "one"), bits[5]) and not torch.equal(slow_bits(1, 5, 15, "one"), bits[5])
    fam = FAMILIES["slowly-changing-regression"](examples=200)
    base = fam.prepare(0, "cpu")
    task = fam.make_task(base, 0, 4)
    assert (task.x_train[:, :15] == bits[4]).all()  # the slow bits are the task's
    assert 0.35 < task.x_train[:, 15:].mean() < 0.65  # the others are fresh coin flips
    assert torch.equal(task.y_train, base(task.x_train))
    assert task.x_test.shape == (32, 20) and task.x_test[:, 15:].unique(dim=0).shape[0] == 32
    again = fam.make_task(fam.prepare(0, "cpu"), 0, 4)
    assert torch.equal(again.x_train, task.x_train) and torch.equal(again.y_train, task.y_train)


def test_all_settings_enumerates_binary_vectors():
    s = all_settings(3)
    assert s.shape == (8, 3) and s.unique(dim=0).shape[0] == 8 and torch.equal(s[5], torch.tensor([1.0, 0.0, 1.0]))


class Exact(nn.Module):
    """A model that outputs the target plus ``shift``."""

    def __init__(self, target: TargetNet, shift: float):
        super().__init__()
        self.target, self.shift = target, shift

    def forward(self, x):
        return (self.target(x) + self.shift).unsqueeze(-1)


def test_measure_is_the_squared_error_without_accuracy():
    fam = FAMILIES["slowly-changing-regression"](examples=50)
    base = fam.prepare(0, "cpu")
    task = fam.make_task(base, 0, 0)
    assert fam.measure(Exact(base, 0.0), task, 7) == {"train_loss": 0.0, "train_acc": None,
                                                      "test_loss": 0.0, "test_acc": None}
    row = fam.measure(Exact(base, 0.5), task, 7)
    assert math.isclose(row["train_loss"], 0.25) and math.isclose(row["test_loss"], 0.25)
    loss, correct, n = fam.loss(Exact(base, -2.0), task.x_train[:3], task.y_train[:3])
    assert math.isclose(loss.item(), 4.0) and n == 3 and correct.item() == 0


def test_the_epoch_row_is_the_online_error_before_each_update():
    """At batch 1 and one pass, the epoch row's train_loss is the mean of the squared errors of
    the predictions made before each update (the paper's binned error), checked against a plain loop."""
    s = loop.setup(resolve(None, SMALL))
    rows = []
    loop.run([s], [rows.append])
    epochs = [r for r in rows if r["event"] == "epoch"]
    assert [r["steps"] for r in epochs] == [40, 40, 40] and all(r["train_acc"] is None for r in epochs)
    ref = loop.setup(resolve(None, SMALL))
    errors, cache = [], {}
    for t in range(3):
        task = ref.task(t)
        for step in range(40 * t, 40 * (t + 1)):
            i = loop.batch_indices(ref, step, cache, t)
            out = ref.model(task.x_train[i]).squeeze(-1)
            loss = ((out - task.y_train[i]) ** 2).mean()
            errors.append(loss.item())
            ref.optimizer.zero_grad()
            loss.backward()
            ref.optimizer.step()
    for t in range(3):
        assert math.isclose(epochs[t]["train_loss"], sum(errors[40 * t : 40 * (t + 1)]) / 40, rel_tol=1e-5)
    ends = [r for r in rows if r["event"] == "task_end"]
    assert all(r["train_acc"] is None and r["test_loss"] >= 0 for r in ends)
    assert "dead_fraction" in ends[0]  # the diagnostics run on a regression family too


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(UserError, match="tasks.flipping"):
        resolve(None, ["tasks={family: slowly-changing-regression, inputs: 10, flipping: 12}"])
    with pytest.raises(UserError, match="kinds that fit: abrupt"):
        resolve(None, SMALL + ["environment.kind=input-interpolation"])


@pytest.mark.parametrize("key", ["past_tasks", "probe_steps"])
def test_accuracy_diagnostics_are_refused_in_one_line(key):
    with pytest.raises(UserError, match=f"diagnostics.{key}: measures accuracy"):
        loop.setup(resolve(None, SMALL + [f"diagnostics.{key}=2"]))


def test_other_diagnostics_adapt_to_the_regression():
    s = loop.setup(resolve(None, SMALL + ["diagnostics.sharpness=1", "diagnostics.online_every=5"]))
    rows = []
    loop.run([s], [rows.append])
    end = [r for r in rows if r["event"] == "task_end"][-1]
    assert end["sharpness"] >= 0 and end["online_plasticity"] is not None
