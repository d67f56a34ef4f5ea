"""hare-tortoise (Lee et al. 2024): the tortoise's EMA and the hare's resets on a constructed sequence."""

import torch
from torch import nn

from plasticlab.methods.base import MethodContext
from plasticlab.methods.hare_tortoise import HareTortoise


def test_ema_and_resets_on_a_constructed_sequence():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    m = HareTortoise(momentum=0.75, reset_every=2, reset_at="task-end")
    m.setup(MethodContext(model, torch.optim.SGD(model.parameters(), lr=0.1), [], 0, torch.device("cpu"),
                          fresh_model=None))
    w = model.weight
    expected_tortoise = []
    for step, hare in enumerate([5.0, 9.0, 1.0]):
        with torch.no_grad():
            w.fill_(hare)  # what the optimiser step made of the hare
        m.after_step(step, torch.zeros(1, 1))
        expected_tortoise.append(m.tortoise_[0].item())
        if step == 0:
            assert w.item() == 5.0  # no reset after step 0
    # T: 1 → .75·1 + .25·5 = 2 → .75·2 + .25·9 = 3.75 (reset after step 1: hare = 3.75) → .75·3.75 + .25·1 = 3.0625
    assert expected_tortoise == [2.0, 3.75, 3.0625]
    assert w.item() == 1.0  # step 2 does not reset
    m.on_task_end(0)
    assert w.item() == 3.0625  # task end: hare ← tortoise


def setup_one(**options) -> tuple[HareTortoise, nn.Linear]:
    model = nn.Linear(1, 1, bias=False)
    m = HareTortoise(**options)
    m.setup(MethodContext(model, torch.optim.SGD(model.parameters(), lr=0.1), [], 0, torch.device("cpu"),
                          fresh_model=None))
    with torch.no_grad():
        model.weight.fill_(7.0)
    return m, model


def test_default_resets_at_task_starts_so_task_ends_measure_the_hare():
    m, model = setup_one(momentum=0.5)
    tortoise = m.tortoise_[0].item()
    m.on_task_end(0)
    assert model.weight.item() == 7.0  # the task-end measures see the trained hare
    m.on_task_start(0)
    assert model.weight.item() == 7.0  # the first task starts from the initial model as it is
    m.on_task_start(1)
    assert model.weight.item() == tortoise  # the next task starts from the tortoise


def test_no_boundary_reset_when_disabled():
    m, model = setup_one(momentum=0.5, reset_at="never")
    m.on_task_end(0)
    m.on_task_start(1)
    assert model.weight.item() == 7.0
