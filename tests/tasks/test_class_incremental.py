import math

import pytest
import torch
from torch import nn

from plasticlab.api import resolve
from plasticlab.data import load_dataset
from plasticlab.engine import loop
from plasticlab.registry import FAMILIES, Interrupted, UserError
from plasticlab.tasks.class_incremental import class_rank, masked_loss

BASE = ["tasks={family: class-incremental, count: 3, classes_per_task: 3}", "model.hidden=[16]",
        "optim.batch_size=32", "environment.epochs_per_task=1", "environment.compute_matched=false",
        "diagnostics.probe_size=64"]


def test_masked_loss_leaves_unseen_classes_out():
    model = nn.Identity()
    logits = torch.tensor([[0.0, 0.0, 100.0], [0.0, 3.0, 100.0]])
    target = torch.tensor([[0, 2], [1, 3]])  # (class, classes seen)
    loss, correct, n = masked_loss(model, logits, target)
    # row 0: softmax over {0, 1} only → log 2, argmax 0 (correct); row 1: all seen → argmax 2 (wrong)
    row1 = -torch.log_softmax(logits[1], 0)[1]
    assert math.isclose(loss.item(), (math.log(2) + row1.item()) / 2, rel_tol=1e-6)
    assert correct.item() == 1 and n == 2


def test_tasks_grow_by_classes_in_a_seeded_order():
    b = load_dataset("digits", seed=0)
    fam = FAMILIES["class-incremental"](count=3, classes_per_task=3)
    rank = class_rank(0, 10)
    assert not torch.equal(rank, class_rank(1, 10)) and torch.equal(rank, class_rank(0, 10))
    sizes = []
    for t in range(3):
        task = fam.make_task(b, 0, t)
        want = rank[b.y_train] < 3 * (t + 1)
        assert task.n_train == int(want.sum()) == fam.task_size(b, 0, t)
        assert torch.equal(task.x_train, b.x_train[want])
        assert torch.equal(task.y_train[:, 0], rank[b.y_train[want]])  # labels renamed to their order
        assert (task.y_train[:, 1] == 3 * (t + 1)).all()
        assert torch.equal(task.y_test[:, 0].unique(), torch.arange(3 * (t + 1)))
        sizes.append(task.n_train)
    assert sizes[0] < sizes[1] < sizes[2]
    with pytest.raises(UserError, match="classes_per_task"):
        FAMILIES["class-incremental"](count=4, classes_per_task=3).task_size(b, 0, 0)


def test_each_task_trains_its_own_epochs():
    s = loop.setup(resolve(None, BASE))
    sizes = [s.task(t).n_train for t in range(3)]
    assert list(s.schedule.epoch_steps) == [n // 32 for n in sizes]
    assert [p.steps for p in s.schedule.phases] == [n // 32 for n in sizes]
    rows = []
    loop.run([s], [rows.append])
    ends = [r for r in rows if r["event"] == "task_end"]
    assert [r["task"] for r in ends] == [0, 1, 2] and all(0 <= r["test_acc"] <= 1 for r in ends)
    assert all(r["steps"] == n // 32 for r, n in zip([r for r in rows if r["event"] == "epoch"], sizes, strict=True))


def test_batches_index_each_tasks_own_examples():
    s = loop.setup(resolve(None, BASE))
    last = s.schedule.phases[2]
    idx = loop.batch_indices(s, last.end - 1, {}, 2)
    assert idx.max() < s.task(2).n_train and idx.numel() == 32
    seen = torch.cat([loop.batch_indices(s, k, {}, 2) for k in range(last.start, last.end)])
    assert seen.unique().numel() == seen.numel()  # one epoch: a permutation of task 2's examples


def test_resume_is_exact_across_tasks_of_different_sizes():
    full, full_rows = loop.setup(resolve(None, BASE)), []
    loop.run([full], [full_rows.append])
    s, rows, saved, n = loop.setup(resolve(None, BASE)), [], [], [0]
    stop_at = s.schedule.phases[1].start + 3

    def stop():
        n[0] += 1
        return n[0] > stop_at

    with pytest.raises(Interrupted):
        loop.run([s], [rows.append], saves=[saved.append], stop=stop)
    resumed = loop.setup(resolve(None, BASE))
    loop.run([resumed], [rows.append], resumes=[saved[-1]])
    assert rows == full_rows
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_gradual_environments_and_the_probe_are_refused():
    with pytest.raises(UserError, match="kinds that fit: abrupt"):
        resolve(None, BASE + ["environment.kind=task-sampling"])
    with pytest.raises(UserError, match="probe_steps"):
        loop.setup(resolve(None, BASE + ["diagnostics.probe_steps=5"]))
