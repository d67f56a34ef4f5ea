"""Every registered method, with its declared ``busy`` options, through the real engine: it changes
the run, a resumed run equals the uninterrupted one, its state survives save→load exactly, its
declarations match what it does, and its per-step hooks never sync with the host.

The methods come from ``registry.METHODS``, so a newly registered method is covered as it is."""

import pytest
import torch

from plasticlab import registry
from plasticlab.config import load_config, to_dict
from plasticlab.registry import UserError
from tests.methods.methods_driver import batch, options, run, run_until, snapshot, spy, step, through_disk, tiny

METHODS = sorted(registry.METHODS)


def busy(name: str) -> dict:
    return {"name": name, **registry.METHODS[name].busy}


def assert_same_state(a, b) -> None:
    """Equal model tensors, optimiser state and method states, bit for bit."""
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    sa, sb = snapshot(a.model, a.optimizer)["opt"], snapshot(b.model, b.optimizer)["opt"]
    assert sa.keys() == sb.keys()
    for name in sa:
        for k in sa[name]:
            assert torch.equal(sa[name][k], sb[name][k]), (name, k)
    for ma, mb in zip(a.methods, b.methods, strict=True):
        assert_same_method_state(ma.state_dict(), mb.state_dict())


def assert_same_method_state(sa: dict, sb: dict) -> None:
    assert sa.keys() == sb.keys()
    for k in sa:
        assert len(sa[k]) == len(sb[k]) and all(torch.equal(x, y) for x, y in zip(sa[k], sb[k], strict=True)), k


def test_all_registered_and_configurable():
    assert {"l2", "l2-init", "spectral", "shrink-perturb", "redo", "cbp", "reset-frozen", "head-reset",
            "full-reset"} <= set(registry.METHODS)
    cfg = load_config(None, ["method=[{name: l2, coef: 0.5}, {name: redo, tau: 0.05}]"])
    assert [m.name for m in cfg.method] == ["l2", "redo"] and cfg.method[1].tau == 0.05
    assert to_dict(cfg)["method"][1] == {"name": "redo", "every": 1000, "tau": 0.05, "max_fraction": 1.0,
                                         "at_task_end": False}
    for name, cls in registry.METHODS.items():
        m = load_config(None, [f"method.name={name}"]).method[0]
        assert m == cls()  # defaults round-trip through the config
        assert isinstance(cls.busy, dict)
        assert load_config(None, [options(busy(name))]).method == [cls(**cls.busy)]


@pytest.mark.parametrize("override", ["method.coef=-1", "method.max_fraction=2", "method.bogus=1"])
def test_bad_options_are_user_errors(override):
    name = {"method.coef=-1": "l2", "method.max_fraction=2": "redo", "method.bogus=1": "cbp"}[override]
    with pytest.raises(UserError):
        load_config(None, [f"method.name={name}", override])


@pytest.mark.parametrize("name", METHODS)
def test_busy_method_changes_the_run(name):
    """With its ``busy`` options, a method acts within the tiny run: rows and weights differ from no method."""
    plain, with_method = tiny(), tiny(busy(name))
    assert [m.name for m in with_method.methods] == [name]
    rows_plain, rows_method = run(plain), run(with_method)
    assert rows_plain != rows_method
    assert any(not torch.equal(v, with_method.model.state_dict()[k]) for k, v in plain.model.state_dict().items())


@pytest.mark.parametrize("where", ["task_end", "mid_task"])
@pytest.mark.parametrize("name", METHODS)
def test_resumed_run_equals_the_uninterrupted_one(name, where):
    """A checkpoint (through torch.save/torch.load(weights_only=True)) resumed in a fresh setup
    continues exactly: the rows of the cut run followed by the resumed run's are the full run's."""
    full = tiny(busy(name))
    states: list[dict] = []
    rows_full = run(full, saves=[lambda st: states.append(through_disk(st))])
    assert [st["step"] for st in states] == [4, 8]  # a checkpoint at every task end
    if where == "task_end":
        state = states[0]
        k = next(i for i, r in enumerate(rows_full) if r["event"] == "task_end") + 1
        rows_cut = rows_full[:k]
    else:  # stopped in the middle of task 1 (steps 4–7)
        rows_cut, state = run_until(tiny(busy(name)), 6)
    resumed = tiny(busy(name))
    rows_resumed = run(resumed, resumes=[state])
    assert rows_resumed and rows_cut + rows_resumed == rows_full
    assert_same_state(full, resumed)


@pytest.mark.parametrize("name", METHODS)
def test_state_round_trips_through_torch_save(name):
    """The whole checkpoint of a run, saved and loaded with weights_only=True, restores the method exactly."""
    s = tiny(busy(name))
    _, state = run_until(s, 6)  # run_until passes the checkpoint through torch.save/torch.load
    t = tiny(busy(name))
    t.methods[0].load_state_dict(state["methods"][0])
    assert_same_method_state(s.methods[0].state_dict(), t.methods[0].state_dict())
    assert_same_method_state(state["methods"][0], s.methods[0].state_dict())


def test_resumed_state_matters_for_stateful_methods():
    """Without its saved state, a resumed CBP continues differently (the tests above are not vacuous)."""
    full = tiny(busy("cbp"))
    run(full)
    _, state = run_until(tiny(busy("cbp")), 6)
    assert any(v.abs().sum() > 0 for v in state["methods"][0]["util"])
    fresh = tiny(busy("cbp"))
    state["methods"] = [fresh.methods[0].state_dict()]
    run(fresh, resumes=[state])
    assert not all(torch.equal(v, w) for v, w in zip(full.model.parameters(), fresh.model.parameters(), strict=True))


NOT_PER_STEP = [pytest.param(section, id=f"{section['name']}-{kind}")
                for name, cls in sorted(registry.METHODS.items())
                for kind, section in (("default", {"name": name}), ("busy", busy(name)))
                if kind == "default" or cls.busy
                if not cls(**{k: v for k, v in section.items() if k != "name"}).per_step]


@pytest.mark.parametrize("section", NOT_PER_STEP)
def test_a_method_that_does_not_declare_per_step_has_no_per_step_effect(section):
    """The engine calls extra_loss, add_grad and after_step only for ``per_step`` methods, so a method
    that does not declare it must leave them as no-ops; one that captures must declare it."""
    s = tiny(section)
    m = s.methods[0]
    assert not m.per_step and not m.capture  # activations are read in per-step hooks only
    step(s, 0)  # optimiser state exists
    before = snapshot(s.model, s.optimizer)
    x, _ = batch(s, 1)
    assert m.extra_loss(s.model) is None
    m.add_grad()
    m.after_step(0, x)  # called directly: the engine would not
    m.after_step(1, x)
    after = snapshot(s.model, s.optimizer)
    assert all(torch.equal(v, after["params"][k]) for k, v in before["params"].items())
    assert all(torch.equal(v, after["opt"][p][k]) for p, st in before["opt"].items() for k, v in st.items())


def _raise(*args, **kwargs):
    raise AssertionError("host sync inside a training step")


SYNCS = ["item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__float__", "__int__"]


@pytest.mark.parametrize("name", METHODS)
def test_no_host_sync_in_extra_loss_add_grad_and_after_step(name, monkeypatch):
    """In a real step (warm state: CBP has mature units, …) the method's own per-step hooks never sync."""
    s = tiny(busy(name), tasks=1, steps_per_task=8)
    run_until(s, 5)
    m = s.methods[0]

    def guarded(hook):
        def call(*args):
            with monkeypatch.context() as mp:
                for attr in SYNCS:
                    mp.setattr(torch.Tensor, attr, _raise)
                return hook(*args)

        return call

    calls = {h: spy(m, h) for h in ("extra_loss", "add_grad", "after_step")}
    for h in calls:  # the spies record the calls; the guards sit between the spies and the hooks
        real = m.__dict__[h]
        setattr(m, h, guarded(real))
    step(s, 5)  # the run's 6th step: due for every busy cadence (redo, shrink-perturb: every 2)
    if m.per_step:
        assert all(len(c) == 1 for c in calls.values()), calls
    else:
        assert not any(calls.values())
    with pytest.raises(AssertionError), monkeypatch.context() as mp:  # the patch does catch syncs
        mp.setattr(torch.Tensor, "item", _raise)
        torch.ones(1).item()
