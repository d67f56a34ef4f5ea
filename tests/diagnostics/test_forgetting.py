"""Forgetting (diagnostics.past_tasks): past_task_acc equals measuring the earlier task directly."""

import pytest
import torch

from plasticlab.api import resolve
from plasticlab.diagnostics import OPTIONAL
from plasticlab.diagnostics.forgetting import past_task_indices
from plasticlab.engine import loop

TINY = ["tasks.family=permuted-pixels", "model.hidden=[16]", "tasks.count=3", "environment.epochs_per_task=1",
        "optim.batch_size=128", "diagnostics.probe_size=64", "engine.device=cpu"]
ADDED = {k for k, v in OPTIONAL.items() if v == "past_tasks"}


def train(overrides):
    torch.set_num_threads(1)
    s = loop.setup(resolve(None, TINY + overrides))
    rows, states = [], []
    loop.run([s], [rows.append], saves=[states.append])
    return s, rows, states


def test_past_task_indices():
    assert past_task_indices(0, 5) == []
    assert past_task_indices(4, 0) == []
    assert past_task_indices(3, 5) == [0, 1, 2]
    assert past_task_indices(5, 5) == [0, 1, 2, 3, 4]
    assert past_task_indices(10, 3) == [0, 5, 9]  # 0, 4.5 (half up), 9
    assert past_task_indices(100, 4) == [0, 33, 66, 99]
    assert past_task_indices(7, 1) == [0]
    for t in range(1, 40):
        for n in range(1, 8):
            got = past_task_indices(t, n)
            assert len(got) == min(t, n) and len(set(got)) == len(got) and got == sorted(got)
            assert got[0] == 0 and (n == 1 or got[-1] == t - 1)


def test_past_task_acc_equals_direct_measurement_and_rows_are_otherwise_unchanged():
    s, rows, states = train(["diagnostics.past_tasks=5"])
    _, off, off_states = train([])
    ends = [r for r in rows if r["event"] == "task_end"]
    assert ends[0]["past_task_acc"] == {} and ends[0]["mean_past_acc"] is None
    assert list(ends[1]["past_task_acc"]) == ["0"] and list(ends[2]["past_task_acc"]) == ["0", "1"]

    # task 1's end: rebuild the model from that checkpoint and measure task 0 directly
    model = loop.setup(resolve(None, TINY)).model
    model.load_state_dict(states[1]["model"])
    model.eval()
    direct = s.family.measure(model, s.family.make_task(s.base, s.cfg.seed, 0), s.cfg.engine.eval_batch_size)
    assert direct["test_acc"] is not None  # permuted-pixels has a test set: test accuracy is used
    assert ends[1]["past_task_acc"]["0"] == direct["test_acc"]
    assert ends[1]["mean_past_acc"] == direct["test_acc"]
    assert ends[2]["mean_past_acc"] == pytest.approx(sum(ends[2]["past_task_acc"].values()) / 2)

    assert [{k: v for k, v in r.items() if k not in ADDED} for r in rows] == off
    for a, b in zip(states, off_states, strict=True):
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_train_accuracy_where_the_task_has_no_test_set():
    s, rows, states = train(["tasks.family=random-labels", "tasks.count=2", "diagnostics.past_tasks=1"])
    end = [r for r in rows if r["event"] == "task_end"][1]
    model = loop.setup(resolve(None, TINY + ["tasks.family=random-labels", "tasks.count=2"])).model
    model.load_state_dict(states[1]["model"])
    model.eval()
    direct = s.family.measure(model, s.family.make_task(s.base, s.cfg.seed, 0), s.cfg.engine.eval_batch_size)
    assert direct["test_acc"] is None
    assert end["past_task_acc"] == {"0": direct["train_acc"]}
