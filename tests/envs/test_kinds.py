import pytest
import torch

from plasticlab.envs.kinds import TaskSampling, old_count, soft_targets
from plasticlab.envs.schedule import Phase
from plasticlab.registry import ENVIRONMENTS
from plasticlab.tasks.base import Task


def two_tasks():
    x0 = torch.arange(12.0).view(6, 2)
    x1 = -x0 * 10
    return (Task(0, x0, torch.tensor([0, 1, 2, 0, 1, 2]), None, None),
            Task(1, x1, torch.tensor([2, 2, 1, 1, 0, 0]), None, None))


def test_input_interpolation_values():
    old, new = two_tasks()
    env = ENVIRONMENTS["input-interpolation"](classes=3)
    idx = torch.tensor([4, 1])
    x, y = env.batch(Phase(1, "transition", 0.25, 0, 1), old, new, idx)
    # x_α = 0.75·x_old + 0.25·x_new, same base examples
    assert torch.allclose(x, torch.tensor([[8 * 0.75 - 80 * 0.25, 9 * 0.75 - 90 * 0.25], [2 * 0.75 - 20 * 0.25,
                                                                                          3 * 0.75 - 30 * 0.25]]))
    assert y.tolist() == [0, 2]
    x, y = env.batch(Phase(1, "task", None, 0, 1), old, new, idx)
    assert torch.equal(x, new.x_train[idx])


def test_soft_targets_direct():
    y = soft_targets(torch.tensor([0, 1]), torch.tensor([2, 1]), 0.3, 3, "direct")
    assert torch.allclose(y, torch.tensor([[0.7, 0.0, 0.3], [0.0, 1.0, 0.0]]))
    assert torch.allclose(y.sum(1), torch.ones(2))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
def test_soft_targets_via_uniform(alpha):
    y = soft_targets(torch.tensor([0]), torch.tensor([2]), alpha, 4, "via-uniform")
    assert torch.allclose(y.sum(1), torch.ones(1))
    if alpha <= 0.5:
        exp = [(1 - 2 * alpha) + 2 * alpha / 4, 2 * alpha / 4, 2 * alpha / 4, 2 * alpha / 4]
    else:
        u = (2 - 2 * alpha) / 4
        exp = [u, u, (2 * alpha - 1) + u, u]
    assert torch.allclose(y[0], torch.tensor(exp))
    if alpha == 0.5:
        assert torch.allclose(y, torch.full((1, 4), 0.25))
    if alpha == 1.0:
        assert y[0].tolist() == [0, 0, 1, 0]


@pytest.mark.parametrize("B", [1, 2, 7, 64, 400])
@pytest.mark.parametrize("delta", [0.5, 0.25, 0.05, 0.02])
def test_task_sampling_counts(B, delta):
    from plasticlab.envs.schedule import alpha_grid

    x0 = torch.zeros(500, 1)
    x1 = torch.ones(500, 1)
    old = Task(0, x0, torch.zeros(500, dtype=torch.long), None, None)
    new = Task(1, x1, torch.ones(500, dtype=torch.long), None, None)
    env = TaskSampling(classes=2)
    for a in alpha_grid(delta):
        x, y = env.batch(Phase(1, "transition", a, 0, 1), old, new, torch.arange(B))
        n_old = int((x[:, 0] == 0).sum())
        assert x.shape[0] == B  # never a short or empty batch
        assert n_old == old_count(B, a) == int(B * (1 - a) + 0.5)
        assert torch.equal(y, x[:, 0].long())


def test_old_count_rounding():
    assert old_count(64, 0.5) == 32
    assert old_count(3, 0.5) == 2  # halves round up, never banker's rounding
    assert old_count(64, 0.02) == 63
