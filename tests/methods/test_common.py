"""Every method: registered and configurable, state survives save→load exactly, no host sync in the step."""

import dataclasses

import pytest
import torch

from plasticlab import registry
from plasticlab.config import load_config, to_dict
from plasticlab.registry import UserError
from tests.methods.methods_driver import BUSY, NAMES, Driver


def make(name: str):
    return registry.METHODS[name](**BUSY[name])


def test_all_registered_and_configurable():
    assert set(NAMES) <= set(registry.METHODS)
    cfg = load_config(None, ["method=[{name: l2, coef: 0.5}, {name: redo, tau: 0.05}]"])
    assert [m.name for m in cfg.method] == ["l2", "redo"] and cfg.method[1].tau == 0.05
    assert to_dict(cfg)["method"][1] == {"name": "redo", "every": 1000, "tau": 0.05, "max_fraction": 1.0,
                                         "at_task_end": False}
    for name in NAMES:
        m = load_config(None, [f"method.name={name}"]).method[0]
        assert m == registry.METHODS[name]()  # defaults round-trip through the config


@pytest.mark.parametrize("override", ["method.coef=-1", "method.max_fraction=2", "method.bogus=1"])
def test_bad_options_are_user_errors(override):
    name = {"method.coef=-1": "l2", "method.max_fraction=2": "redo", "method.bogus=1": "cbp"}[override]
    with pytest.raises(UserError):
        load_config(None, [f"method.name={name}", override])


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_gives_identical_continuation(name):
    torch.set_num_threads(1)
    a = Driver([make(name)])
    a.run(0, 7, steps_per_task=4)  # task 0 = steps 0–3, task 1 = 4–7: stop mid-task
    state = a.checkpoint()
    a.run(7, 14, steps_per_task=4)
    b = Driver([make(name)])
    b.restore(state)
    b.run(7, 14, steps_per_task=4)
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    sa, sb = a.methods[0].state_dict(), b.methods[0].state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert all(torch.equal(x, y) for x, y in zip(sa[k], sb[k], strict=True)), k


def test_resumed_state_matters_for_stateful_methods():
    """Without loading its state, a fresh CBP continues differently (the test above is not vacuous)."""
    a = Driver([make("cbp")])
    a.run(0, 7, steps_per_task=4)
    state = a.checkpoint()
    a.run(7, 14, steps_per_task=4)
    b = Driver([make("cbp")])
    state["methods"] = [b.methods[0].state_dict()]
    b.restore(state)
    b.run(7, 14, steps_per_task=4)
    assert not all(torch.equal(v, w) for v, w in zip(a.model.parameters(), b.model.parameters(), strict=True))


def _raise(*args, **kwargs):
    raise AssertionError("host sync inside a training step")


SYNCS = ["item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__float__", "__int__"]


@pytest.mark.parametrize("name", NAMES)
def test_no_host_sync_in_extra_loss_add_grad_and_after_step(name, monkeypatch):
    m = dataclasses.replace(make(name), **({"every": 1} if name in ("redo", "shrink-perturb") else {}))
    d = Driver([m])
    d.run(0, 4, steps_per_task=100)  # state is warm (CBP has mature units, etc.)
    x, y = d.batch(4)
    with monkeypatch.context() as mp:
        for attr in SYNCS:
            mp.setattr(torch.Tensor, attr, _raise)
        loss = torch.nn.functional.cross_entropy(d.model(x), y)
        extra = m.extra_loss(d.model)
    total = loss if extra is None else loss + extra
    d.optimizer.zero_grad(set_to_none=True)
    total.backward()
    with monkeypatch.context() as mp:
        for attr in SYNCS:
            mp.setattr(torch.Tensor, attr, _raise)
        m.add_grad()
    d.optimizer.step()  # torch's Adam reads its step count with .item(): outside the patched region
    with monkeypatch.context() as mp:
        for attr in SYNCS:
            mp.setattr(torch.Tensor, attr, _raise)
        m.after_step(4, x)
    with pytest.raises(AssertionError), monkeypatch.context() as mp:  # the patch does catch syncs
        mp.setattr(torch.Tensor, "item", _raise)
        torch.ones(1).item()
