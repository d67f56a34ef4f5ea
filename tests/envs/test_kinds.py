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


@pytest.mark.parametrize("delta", [0.5, 0.25, 0.1])
def test_via_uniform_transition_visits_the_released_codes_smoothing_levels(delta):
    """The released code (review-time MNIST trainer) smooths the old labels with s = 0, δ, …, 1−δ,
    switches labels, then smooths the new ones with s = 1, 1−δ, …, δ, target (1−s)·onehot + s/C.
    plasticlab's via-uniform transition visits the same levels in order, without the s = 0 one
    (old one-hot again): each half moves s by δ, not 2δ. The direct path keeps α = δ, …, 1−δ."""
    from plasticlab.config import EnvironmentConfig, TransitionConfig
    from plasticlab.envs.schedule import build_schedule

    C, y_old, y_new = 4, torch.tensor([0, 3]), torch.tensor([2, 3])
    env = EnvironmentConfig(kind="output-interpolation", epochs_per_task=4.0,
                            transition=TransitionConfig(length=2.0, step=delta, mode="via-uniform"))
    levels = [p.alpha for p in build_schedule(env, 2, 10).phases if p.kind == "transition"]
    n = round(1 / delta)

    def smoothed(y, s):
        return (1 - s) * torch.nn.functional.one_hot(y, C).float() + s / C

    released = [smoothed(y_old, j * delta) for j in range(1, n)] + [smoothed(y_new, 1 - j * delta) for j in range(n)]
    got = [soft_targets(y_old, y_new, a, C, "via-uniform") for a in levels]
    assert len(got) == len(released) == 2 * n - 1
    for g, r in zip(got, released, strict=True):
        assert torch.allclose(g, r, atol=1e-6)
    # the largest change of the target between consecutive levels is δ·‖onehot − u‖₁, as in the released code
    steps = [(b - a).abs().sum(1).max().item() for a, b in zip(got, got[1:], strict=False)]
    assert max(steps) == pytest.approx(delta * 2 * (1 - 1 / C), abs=1e-5)
    direct = EnvironmentConfig(kind="output-interpolation", epochs_per_task=4.0,
                               transition=TransitionConfig(length=2.0, step=delta, mode="direct"))
    assert [p.alpha for p in build_schedule(direct, 2, 10).phases if p.kind == "transition"] == pytest.approx(
        [j * delta for j in range(1, n)])
