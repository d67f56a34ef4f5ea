import torch

from plasticlab.data import load_dataset
from plasticlab.registry import FAMILIES
from plasticlab.tasks.label_permuted import class_permutation
from tests.tasks.cli_run import run_cli


def test_class_permutation_is_a_pure_bijection_of_seed_and_task():
    p = class_permutation(0, 3, 10)
    assert torch.equal(p.sort().values, torch.arange(10))
    assert torch.equal(p, class_permutation(0, 3, 10))
    assert not torch.equal(p, class_permutation(0, 4, 10)) and not torch.equal(p, class_permutation(1, 3, 10))


def test_task_renames_classes_consistently_in_train_and_test():
    b = load_dataset("mnist1d", samples_per_class=30, test_samples_per_class=10, seed=0)
    fam = FAMILIES["label-permuted"](count=3)
    task = fam.make_task(b, 5, 2)
    pi = class_permutation(5, 2, 10)
    assert torch.equal(task.x_train, b.x_train) and torch.equal(task.x_test, b.x_test)
    for c in range(10):  # every example of class c gets the same new class π(c), in both splits
        assert set(task.y_train[b.y_train == c].tolist()) == {int(pi[c])}
        assert set(task.y_test[b.y_test == c].tolist()) == {int(pi[c])}
    assert torch.equal(torch.bincount(task.y_train), torch.bincount(b.y_train)[pi.argsort()])
    assert torch.equal(fam.make_task(b, 5, 2).y_train, task.y_train)
    other = fam.make_task(b, 5, 3)
    assert (other.y_train != task.y_train).any()


def test_runs_from_the_cli_on_mnist1d(tmp_path):
    ends = run_cli(tmp_path / "run", "data.name=mnist1d", "data.samples_per_class=20", "tasks.family=label-permuted")
    assert [e["task"] for e in ends] == [0, 1]
    assert all(e["test_acc"] is not None and 0 <= e["test_acc"] <= 1 for e in ends)
