"""Faithful defaults: reset methods get a per-entry Adam step (``optim.per_entry_step: auto``),
and ``every`` fires after the run's steps N, 2N, … (once per task when N = steps per task)."""

import pytest
import torch

from plasticlab import registry
from plasticlab.methods.base import due
from plasticlab.methods.entry_adam import EntryAdam
from plasticlab.registry import UserError
from tests.methods.methods_driver import run, spy, tiny


@pytest.mark.parametrize("optim", ["adam", "adamw"])
def test_auto_picks_entry_adam_exactly_for_methods_that_declare_it(optim):
    for name, cls in registry.METHODS.items():
        if name == "none":
            continue
        s = tiny({"name": name}, optim=optim)
        want = bool(getattr(cls, "entry_step", False))
        assert s.cfg.optim.per_entry_step is want, name  # resolved: config.yaml records true/false
        assert isinstance(s.optimizer, EntryAdam) == want, name
    assert {n for n, c in registry.METHODS.items() if getattr(c, "entry_step", False)} >= {"redo", "cbp",
                                                                                          "reset-frozen"}


def test_auto_with_several_methods_and_explicit_values():
    s = tiny({"name": "l2"}, {"name": "cbp"})
    assert isinstance(s.optimizer, EntryAdam)
    s = tiny({"name": "cbp"}, overrides=("optim.per_entry_step=false",))  # the old behaviour on request
    assert type(s.optimizer) is torch.optim.Adam
    s = tiny({"name": "l2"}, overrides=("optim.per_entry_step=true",))
    assert isinstance(s.optimizer, EntryAdam)
    s = tiny({"name": "cbp"}, optim="sgd")  # no Adam moments: nothing to restart
    assert type(s.optimizer) is torch.optim.SGD and s.cfg.optim.per_entry_step is False
    for optim in ("sgd", "upgd"):
        with pytest.raises(UserError, match="optim.per_entry_step"):
            tiny(optim=optim, overrides=("optim.per_entry_step=true",))


def test_per_entry_default_changes_cbp_runs():
    busy = {"name": "cbp", "replacement_rate": 0.2, "maturity": 2}
    a, b = tiny(busy, tasks=2, steps_per_task=6), tiny(busy, tasks=2, steps_per_task=6,
                                                       overrides=("optim.per_entry_step=false",))
    run(a)
    run(b)
    assert not all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True))


def test_due_counts_steps_from_one():
    class M:
        every = 4

    assert [k for k in range(12) if due(M, k)] == [3, 7, 11]


@pytest.mark.parametrize(("every", "fired"), [(4, [3, 7, 11]), (1, list(range(12))), (3, [2, 5, 8, 11]),
                                             (5, [4, 9])])
def test_redo_every_fires_after_steps_n_2n(every, fired):
    """3 tasks of 4 steps: every = 4 (steps per task) fires once per task, after its last step."""
    s = tiny({"name": "redo", "every": every}, tasks=3, steps_per_task=4)
    calls = spy(s.methods[0], "after_step")
    run(s)
    assert calls == fired
