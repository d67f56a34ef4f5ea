"""online_plasticity: 1 − loss after / loss before the update, on the update's own batch, averaged per task."""

import io

import pytest
import torch

from plasticlab.api import resolve
from plasticlab.diagnostics import online
from plasticlab.engine import loop
from tests.conftest import TINY

SETS = TINY + ["tasks.count=2", "diagnostics.every=never"]


def rows_of(overrides, **kw):
    rows = []
    loop.run([loop.setup(resolve(None, SETS + overrides))], [rows.append], **kw)
    return rows


def test_known_ratios_are_averaged_per_task():
    row = {}
    online.add(row, torch.tensor(2.0), torch.tensor(1.0))  # halved: 0.5
    online.add(row, torch.tensor(1.0), torch.tensor(1.5))  # worse: −0.5
    online.add(row, torch.tensor(4.0), torch.tensor(0.0))  # removed: 1
    assert online.value(row)["online_plasticity"] == pytest.approx(1 / 3)
    assert online.value({})["online_plasticity"] is None


def test_a_step_that_changes_nothing_scores_zero_and_a_learning_run_scores_above():
    frozen = [r for r in rows_of(["diagnostics.online_every=1", "optim.lr=1e-12"]) if r["event"] == "task_end"]
    assert all(abs(r["online_plasticity"]) < 1e-6 for r in frozen)
    learning = [r for r in rows_of(["diagnostics.online_every=1", "optim.lr=3e-3"]) if r["event"] == "task_end"]
    assert all(r["online_plasticity"] > 1e-3 for r in learning)


@pytest.mark.parametrize("norm", ["layernorm", "batchnorm"])
def test_the_run_is_untouched_and_resume_is_exact(norm):
    on = ["diagnostics.online_every=3", f"model.norm={norm}"]
    off = [{k: v for k, v in r.items() if k != "online_plasticity"} for r in rows_of(on)]
    assert off == rows_of([f"model.norm={norm}"])  # eval-mode forwards: BatchNorm statistics untouched
    saved = []

    def save(state):  # why: through bytes, as the store does (the optimiser's tensors go on changing)
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        saved.append(torch.load(buf, weights_only=True))

    full = rows_of(on + ["engine.checkpoint_every=7"], saves=[save])
    mid = next(st for st in saved if "online" in st["row"] and st["step"] % 7 == 0 and st["step"] > 45)
    rest = []
    loop.run([loop.setup(resolve(None, SETS + on + ["engine.checkpoint_every=7"]))], [rest.append], resumes=[mid])
    assert rest == full[len(full) - len(rest):]
