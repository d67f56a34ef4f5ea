"""Golden numbers: the exact metrics of a tiny fixed run, single and packed (CPU, one thread).

A change of these numbers is a deliberate decision: update them in the same commit and say why.
They were produced by the engine before and after the one-engine change (identical to 1e-9).
"""

import pytest

from plasticlab.api import resolve
from plasticlab.engine import loop

GOLDEN = ["tasks.family=permuted-pixels", "model.hidden=[16]", "tasks.count=2", "environment.epochs_per_task=1",
          "optim.batch_size=128", "diagnostics.probe_size=64",
          "method=[{name: l2, coef: 0.001}, {name: shrink-perturb}]"]
KEYS = ("train_loss", "train_acc", "test_acc", "effective_rank", "weight_norm", "input_sensitivity")

SINGLE = [
    ["epoch", 0, 2.311417493, 0.149857955], ["epoch", 0, 2.144061522, 0.265625], ["epoch", 0, 2.00807346, 0.376420455],
    ["task_end", 0, 1.937982084, 0.433533734, 0.396666667, 11.192348067, 4.978317581, 1.129541636],
    ["epoch", 1, 2.259905555, 0.094460227], ["epoch", 1, 2.121101553, 0.254971591],
    ["epoch", 1, 1.972698558, 0.410511364],
    ["task_end", 1, 1.898158296, 0.46492986, 0.443333333, 10.417174248, 4.592242893, 1.109870791]]
"""Seed 0 run alone."""

PACKED_SEED1 = [
    ["epoch", 0, 2.26927896, 0.196022727], ["epoch", 0, 2.074036685, 0.337357955],
    ["epoch", 0, 1.924492923, 0.443892045],
    ["task_end", 0, 1.840014502, 0.508350033, 0.42, 12.451728836, 4.995499567, 1.402933121],
    ["epoch", 1, 2.326419484, 0.1328125], ["epoch", 1, 2.203828291, 0.215909091],
    ["epoch", 1, 2.065578287, 0.316761364],
    ["task_end", 1, 1.993957642, 0.372077488, 0.37, 11.309247371, 4.58286179, 1.191307664]]
"""Seed 1 as member 1 of a pack with seed 0."""


def table(rows):
    return [[r["event"], r["task"]] + [r[k] for k in KEYS if r.get(k) is not None]
            for r in rows if r["event"] in ("epoch", "task_end")]


def assert_golden(rows, golden):
    got = table(rows)
    assert [g[:2] for g in got] == [g[:2] for g in golden]
    for g, want in zip(got, golden, strict=True):
        assert g[2:] == pytest.approx(want[2:], rel=1e-6, abs=1e-8), g[:2]


def test_single_run_numbers_are_pinned():
    rows = []
    loop.run([loop.setup(resolve(None, GOLDEN))], [rows.append])
    assert_golden(rows, SINGLE)


def test_packed_run_numbers_are_pinned():
    rows = [[], []]
    loop.run(loop.setup_pack([resolve(None, GOLDEN), resolve(None, GOLDEN + ["seed=1"])]), [r.append for r in rows])
    assert_golden(rows[1], PACKED_SEED1)
