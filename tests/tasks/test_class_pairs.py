import json

import pytest
import torch

from plasticlab.data import load_dataset
from plasticlab.registry import FAMILIES
from plasticlab.tasks.class_pairs import class_order, task_classes
from tests.tasks.cli_run import run_cli


def base():
    return load_dataset("mnist1d", samples_per_class=30, test_samples_per_class=10, seed=0)


def test_pairs_cover_every_class_once_per_cycle_then_repeat():
    pairs = [task_classes(7, t, 10) for t in range(10)]
    assert sorted(c for p in pairs[:5] for c in p) == list(range(10))
    assert pairs[5:] == pairs[:5]
    order = class_order(7, 10)
    assert pairs[2] == (int(order[4]), int(order[5]))
    assert pairs != [task_classes(8, t, 10) for t in range(10)]
    assert [task_classes(3, t, 7) for t in range(4)][3] == task_classes(3, 0, 7)  # odd C: 3 pairs a cycle


def test_task_holds_its_two_classes_relabelled_0_and_1():
    b = base()
    fam = FAMILIES["class-pairs"](count=4)
    a, c = task_classes(0, 1, 10)
    task = fam.make_task(b, 0, 1)
    keep = (b.y_train == a) | (b.y_train == c)
    assert torch.equal(task.x_train, b.x_train[keep])
    assert torch.equal(task.y_train, (b.y_train[keep] == c).long())
    assert torch.equal(task.x_test, b.x_test[(b.y_test == a) | (b.y_test == c)])
    assert task.y_train.tolist().count(0) == 30 and task.y_test.tolist().count(1) == 10
    assert fam.task_size(b, 0, 1) == 60 == task.n_train
    assert fam.n_outputs(b) == 2
    assert torch.equal(fam.make_task(b, 0, 1).x_train, task.x_train)
    other = fam.make_task(b, 0, 2)
    assert not torch.equal(other.x_train, task.x_train)


def test_task_sizes_follow_class_counts_on_unbalanced_data():
    b = load_dataset("digits", seed=0)  # ~150 training images per class, not all equal
    fam = FAMILIES["class-pairs"](count=5)
    counts = torch.bincount(b.y_train)
    for t in range(5):
        a, c = task_classes(0, t, 10)
        assert fam.task_size(b, 0, t) == int(counts[a] + counts[c]) == fam.make_task(b, 0, t).n_train


@pytest.mark.parametrize("data", [["data.name=mnist1d", "data.samples_per_class=40"],
                                  ["data.name=digits", "optim.batch_size=8", "environment.compute_matched=false"]])
def test_runs_from_the_cli(tmp_path, data):
    """Balanced mnist1d (equal task sizes) and unbalanced digits (each task its own size)."""
    ends = run_cli(tmp_path / "run", *data, "tasks.family=class-pairs")
    assert [e["task"] for e in ends] == [0, 1]
    assert all(0 <= e["test_acc"] <= 1 for e in ends)
    if "data.name=digits" in data:
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        phases = [r["steps"] for r in rows if r["event"] == "phase"]
        b = load_dataset("digits", seed=0)
        counts = torch.bincount(b.y_train)
        want = [int(sum(counts[c] for c in task_classes(0, t, 10))) // 8 for t in range(2)]
        assert phases == want and want[0] != want[1]  # one epoch of each task's own ⌊N_t / B⌋ steps
