"""Declared class counts (``DatasetSpec.counts``): a schedule without reading files.

``run --dry-run`` sizes tasks from the counts a dataset declares; these tests hold the counts to
the data (where the files are present; the embedded digits always are) and the schedule built
from them to the one built from the loaded data.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from plasticlab import registry
from plasticlab.api import resolve
from plasticlab.cli import main
from plasticlab.data.base import declared_labels, load_dataset, read_arrays
from plasticlab.engine.build import load_base, schedule_of, sizing_base
from plasticlab.envs import describe
from plasticlab.registry import UserError

ROOT = Path(__file__).resolve().parents[2]
DECLARED = sorted(n for n, s in registry.DATASETS.items() if s.counts is not None)


@pytest.mark.parametrize("name", DECLARED)
def test_declared_counts_are_those_of_the_files(name):
    try:
        arr = read_arrays(name)
    except UserError:
        pytest.skip(f"{name} is not present under the data root")
    train, test = registry.DATASETS[name].counts
    assert np.bincount(arr.y_train, minlength=arr.classes).tolist() == list(train)
    assert np.bincount(arr.y_test, minlength=arr.classes).tolist() == list(test)
    assert len(train) == len(test) == arr.classes


def test_the_published_datasets_declare_counts():
    assert {"digits", "mnist", "fashion-mnist", "kmnist", "emnist-balanced", "emnist-letters", "emnist-digits",
            "cifar10", "cifar100", "tiny-imagenet"} <= set(DECLARED)
    assert sum(registry.DATASETS["emnist-balanced"].counts[0]) == 112_800
    assert sum(registry.DATASETS["mnist"].counts[1]) == 10_000


@pytest.mark.parametrize("per_class", [None, 100])
def test_declared_labels_are_the_loaded_labels_sorted(per_class):
    got = declared_labels("digits", per_class, None)
    loaded = load_dataset("digits", samples_per_class=per_class, seed=3)
    assert got.classes == loaded.classes == 10
    assert torch.equal(got.y_train, loaded.y_train.sort().values)


def test_declared_labels_refuse_a_subset_larger_than_a_class_like_loading():
    errors = []
    for read in (lambda: declared_labels("digits", 145, None), lambda: load_dataset("digits", samples_per_class=145),
                 lambda: declared_labels("digits", None, 31),
                 lambda: load_dataset("digits", test_samples_per_class=31)):
        with pytest.raises(UserError) as e:
            read()
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "class 8 has only 144" in errors[0]
    assert errors[2] == errors[3] and "data.test_samples_per_class=31" in errors[2]


@pytest.mark.parametrize("family", ["random-labels", "permuted-pixels", "class-incremental", "class-pairs",
                                    "label-permuted", "blurred"])
@pytest.mark.parametrize("per_class", [None, 60])
def test_schedule_from_declared_counts_equals_schedule_from_loaded_data(family, per_class):
    sets = [f"tasks.family={family}", "tasks.count=3", "optim.batch_size=32", "diagnostics.probe_steps=0",
            f"data.samples_per_class={'null' if per_class is None else per_class}"]
    if family == "class-incremental":
        sets.append("tasks.classes_per_task=3")
    cfg = resolve(None, sets)
    base = sizing_base(cfg)
    assert base.__class__.__name__ == "Labels"
    n0, declared = schedule_of(cfg, base)
    m0, loaded = schedule_of(cfg, load_base(cfg, torch.device("cpu")))
    assert n0 == m0 and describe(declared) == describe(loaded)


def test_dry_run_reads_no_files(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("--dry-run read the dataset")

    monkeypatch.setattr("plasticlab.engine.build.load_dataset", refuse)
    code = main(["run", "--dry-run", str(ROOT / "configs" / "emnist_permuted.yaml"), "--set", f"data.root={tmp_path}",
                 "--set", "tasks.count=2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "117 steps per epoch" in out  # ⌊47 classes × 1,000 / 400⌋, with no EMNIST file under data.root
