"""reset-frozen touches only mutually frozen units; head-reset and full-reset re-initialise."""

import torch

from plasticlab.diagnostics.frozen import frozen_mask
from plasticlab.methods.full_reset import FullReset
from plasticlab.methods.head_reset import HeadReset
from plasticlab.methods.reset_frozen import ResetFrozen
from plasticlab.seeding import derived_seed
from tests.methods.methods_driver import Driver, snapshot


def plant_frozen(d: Driver) -> None:
    """hidden0 unit 2: incoming and outgoing tiny (frozen); unit 5: incoming tiny only (sparse)."""
    lin0, lin1 = d.model.linears[0], d.model.linears[1]
    with torch.no_grad():
        lin0.weight[2] *= 1e-3
        lin1.weight[:, 2] *= 1e-3
        lin0.weight[5] *= 1e-3


def test_frozen_mask_definition():
    d = Driver([])
    plant_frozen(d)
    assert frozen_mask(d.units[0], 0.1).nonzero().flatten().tolist() == [2]
    assert not frozen_mask(d.units[1], 0.1).any()
    assert frozen_mask(d.units[0], 0.0).sum() == 0
    assert frozen_mask(d.units[0], 10.0).all()  # every |w| < bound = √3·std < 10·std


def test_reset_frozen_touches_only_frozen_units():
    m = ResetFrozen(tau=0.1)
    d = Driver([m])
    plant_frozen(d)
    d.step(0)  # Adam moments everywhere
    with torch.no_grad():
        d.model.linears[0].weight[2] *= 1e-3  # the step moved them by ~lr; make them tiny again
        d.model.linears[1].weight[:, 2] *= 1e-3
    before = snapshot(d.model, d.optimizer)
    m.on_task_start(0)  # default tasks: all_but_first
    after = snapshot(d.model, d.optimizer)
    assert all(torch.equal(after["params"][k], v) for k, v in before["params"].items())
    m.on_task_start(1)
    after = snapshot(d.model, d.optimizer)
    g = d.ctx.generator("reset-frozen", 1)
    layer0 = d.units[0]
    fresh = [s.draw(g) for s in layer0.incoming] + [s.draw(g) for s in layer0.outgoing]
    changed = {"linears.0.weight": (slice(2, 3), slice(None)), "linears.0.bias": (slice(2, 3),),
               "norms.0.weight": (slice(2, 3),), "norms.0.bias": (slice(2, 3),),
               "linears.1.weight": (slice(None), slice(2, 3))}
    assert torch.equal(after["params"]["linears.0.weight"][2], fresh[0][2])
    assert torch.equal(after["params"]["linears.1.weight"][:, 2], fresh[4][:, 2])  # outgoing: init
    for name, value in before["params"].items():
        keep = torch.ones_like(value, dtype=torch.bool)
        if name in changed:
            keep[changed[name]] = False
            assert (after["opt"][name]["exp_avg"][~keep] == 0).all()
        assert torch.equal(after["params"][name][keep], value[keep]), name
        if name in before["opt"]:
            assert torch.equal(after["opt"][name]["exp_avg"][keep], before["opt"][name]["exp_avg"][keep])
    assert torch.equal(after["params"]["linears.0.weight"][5], before["params"]["linears.0.weight"][5])


def test_reset_frozen_task_list_and_zero_outgoing():
    m = ResetFrozen(tau=0.1, tasks=[3], outgoing="zero")
    d = Driver([m])
    plant_frozen(d)
    w0 = d.model.linears[0].weight.detach().clone()
    m.on_task_start(1)
    assert torch.equal(d.model.linears[0].weight, w0)
    m.on_task_start(3)
    assert not torch.equal(d.model.linears[0].weight[2], w0[2])
    assert (d.model.linears[1].weight[:, 2] == 0).all()


def test_head_reset():
    m = HeadReset()
    d = Driver([m])
    for step in range(3):
        d.step(step)
    before = snapshot(d.model, d.optimizer)
    m.on_task_start(0)
    assert all(torch.equal(v, d.model.state_dict()[k]) for k, v in before["params"].items())
    m.on_task_start(1)
    g = d.ctx.generator("head-reset", 1)
    w, b = [s.draw(g) for s in d.model.head_slices()]
    assert torch.equal(d.model.head.weight, w) and torch.equal(d.model.head.bias, b)
    assert d.model.head.weight not in d.optimizer.state and d.model.head.bias not in d.optimizer.state
    for k, v in before["params"].items():
        if not k.startswith("head"):
            assert torch.equal(d.model.state_dict()[k], v)
    d.step(3)  # training continues with fresh state for the head
    assert int(d.optimizer.state[d.model.head.weight]["step"]) == 1
    assert int(d.optimizer.state[d.model.linears[0].weight]["step"]) == 4


def test_full_reset():
    m = FullReset()
    d = Driver([m])
    params = list(d.model.parameters())
    for step in range(3):
        d.step(step)
    m.on_task_start(2)
    fresh = d.ctx.fresh_model(derived_seed(0, "full-reset", 2))
    for k, v in fresh.state_dict().items():
        assert torch.equal(d.model.state_dict()[k], v)
    assert len(d.optimizer.state) == 0
    assert all(p is q for p, q in zip(d.model.parameters(), params, strict=True))  # optimiser still points at them
    d.step(3)
    assert not torch.equal(d.model.head.weight, fresh.head.weight)
