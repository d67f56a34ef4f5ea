"""Plasticity probe (diagnostics.probe_steps): known gaps, and the run itself is untouched."""

import torch

from plasticlab.api import resolve
from plasticlab.diagnostics import OPTIONAL
from plasticlab.diagnostics.probe import plasticity_probe, probe_task_index
from plasticlab.engine import loop
from plasticlab.registry import Interrupted

TINY = ["tasks.family=permuted-pixels", "model.hidden=[16]", "model.norm=none", "tasks.count=2",
        "environment.epochs_per_task=1", "optim.batch_size=128", "optim.lr=0.01", "diagnostics.probe_size=64",
        "engine.device=cpu"]
PROBE = ["diagnostics.probe_steps=40"]
ADDED = {k for k, v in OPTIONAL.items() if v == "probe_steps"}


def setup(overrides=()):
    torch.set_num_threads(1)
    return loop.setup(resolve(None, TINY + list(overrides)))


def train(overrides=(), **kw):
    s = setup(overrides)
    rows, states = [], []
    loop.run([s], [rows.append], saves=[states.append], **kw)
    return s, rows, states


def same_state(a, b):
    assert a["step"] == b["step"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    oa, ob = a["optimizer"]["state"], b["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    assert all(torch.equal(torch.as_tensor(oa[i][k]), torch.as_tensor(ob[i][k])) for i in oa for k in oa[i])


def test_rows_weights_and_optimiser_are_unchanged_by_the_probe():
    _, rows, states = train(PROBE)
    _, off, off_states = train()
    ends = [r for r in rows if r["event"] == "task_end"]
    assert all(ADDED <= r.keys() for r in ends)
    assert all(0 <= r["probe_acc"] <= 1 and r["probe_gap"] == r["probe_fresh_acc"] - r["probe_acc"] for r in ends)
    assert [{k: v for k, v in r.items() if k not in ADDED} for r in rows] == off
    for a, b in zip(states, off_states, strict=True):
        same_state(a, b)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    train(PROBE)
    assert torch.equal(torch.rand(3), before)  # the global RNG stream is not advanced by the probe


def test_resume_with_the_probe_on_is_exact():
    _, full, full_states = train(PROBE)
    s = setup(PROBE)
    rows, saved, n = [], [], [0]

    def stop():
        n[0] += 1
        return n[0] > 45  # stop inside task 1 (steps 33–66), after task 0's end (and its probe)

    try:
        loop.run([s], [rows.append], saves=[saved.append], stop=stop)
        raise AssertionError("the run should have been interrupted")
    except Interrupted:
        pass
    s2 = setup(PROBE)
    assert 33 < saved[-1]["step"] < 66 and [r["task"] for r in rows if r["event"] == "task_end"] == [0]
    loop.run([s2], [rows.append], saves=[saved.append], resumes=[saved[-1]])
    assert [r for r in rows if r["event"] == "task_end"] == [r for r in full if r["event"] == "task_end"]
    same_state(saved[-1], full_states[-1])


def test_untrained_model_has_zero_gap():
    """θ_t = θ₀: the copy and the fresh initialisation are the same network trained on the same batches."""
    s = setup(PROBE)
    r = plasticity_probe(s, 0, loop.setup, loop.run)
    assert r["probe_acc"] == r["probe_fresh_acc"] and r["probe_gap"] == 0.0
    assert r["probe_acc"] > 0.3  # 40 steps do learn the fresh task
    assert plasticity_probe(s, 0, loop.setup, loop.run) == r  # deterministic


def test_untrainable_network_has_a_large_gap_and_is_not_changed():
    """All hidden weights and biases 0 with ReLU: every hidden unit outputs 0 with derivative 0, so only
    the output bias can learn and the copy predicts one class for every input."""
    s = setup(PROBE)
    with torch.no_grad():
        for lin in s.model.linears:
            lin.weight.zero_()
            lin.bias.zero_()
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    r = plasticity_probe(s, 1, loop.setup, loop.run)
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    assert all(p.grad is None for p in s.model.parameters())
    assert not s.optimizer.state
    y = s.family.make_task(s.base, s.cfg.seed, probe_task_index(s.family, 1)).y_train
    assert r["probe_acc"] <= torch.bincount(y).max().item() / y.numel() + 1e-12  # a constant prediction
    assert r["probe_gap"] > 0.3
