"""reset-frozen touches only mutually frozen units; head-reset and full-reset re-initialise.

The runs are the engine's (``loop.run``: 2 tasks); ``spy`` looks at the state right before and
right after the engine's call of ``on_task_start``."""

import torch

from plasticlab.diagnostics.frozen import frozen_mask
from plasticlab.seeding import derived_seed
from tests.methods.methods_driver import run, snapshot, spy, tiny


def plant_frozen(s) -> None:
    """hidden0 unit 2: incoming and outgoing tiny (frozen); unit 5: incoming tiny only (sparse)."""
    lin0, lin1 = s.model.linears[0], s.model.linears[1]
    with torch.no_grad():
        lin0.weight[2] *= 1e-3
        lin1.weight[:, 2] *= 1e-3
        lin0.weight[5] *= 1e-3


def around_task_starts(s, m, before=None) -> dict:
    """Spy on ``m.on_task_start``: snapshots before/after each call, by task."""
    seen: dict = {}

    def pre(t):
        if before is not None:
            before(t)
        seen[t] = {"before": snapshot(s.model, s.optimizer)}

    spy(m, "on_task_start", pre, lambda t: seen[t].update(after=snapshot(s.model, s.optimizer)))
    return seen


def test_frozen_mask_definition():
    s = tiny()
    plant_frozen(s)
    assert frozen_mask(s.unit_map[0], 0.1).nonzero().flatten().tolist() == [2]
    assert not frozen_mask(s.unit_map[1], 0.1).any()
    assert frozen_mask(s.unit_map[0], 0.0).sum() == 0
    assert frozen_mask(s.unit_map[0], 10.0).all()  # every |w| < bound = √3·std < 10·std


def test_reset_frozen_touches_only_frozen_units():
    s = tiny({"name": "reset-frozen", "tau": 0.1}, steps_per_task=1)  # default tasks: all_but_first
    m = s.methods[0]
    plant_frozen(s)

    def replant(t):
        if t == 1:
            with torch.no_grad():  # task 0's step moved them by ~lr; make them tiny again
                s.model.linears[0].weight[2] *= 1e-3
                s.model.linears[1].weight[:, 2] *= 1e-3

    seen = around_task_starts(s, m, replant)
    run(s)
    assert sorted(seen) == [0, 1]
    assert all(torch.equal(seen[0]["after"]["params"][k], v) for k, v in seen[0]["before"]["params"].items())
    before, after = seen[1]["before"], seen[1]["after"]
    assert before["opt"]  # Adam moments everywhere
    g = s.ctx.generator("reset-frozen", 1)
    layer0 = s.unit_map[0]
    fresh = [sl.draw(g) for sl in layer0.incoming] + [sl.draw(g) for sl in layer0.outgoing]
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
    s = tiny({"name": "reset-frozen", "tau": 0.1, "tasks": [3], "outgoing": "zero"})
    m = s.methods[0]
    plant_frozen(s)
    w0 = s.model.linears[0].weight.detach().clone()
    m.on_task_start(1)
    assert torch.equal(s.model.linears[0].weight, w0)
    m.on_task_start(3)
    assert not torch.equal(s.model.linears[0].weight[2], w0[2])
    assert (s.model.linears[1].weight[:, 2] == 0).all()


def test_head_reset():
    s = tiny({"name": "head-reset"}, steps_per_task=3)
    m = s.methods[0]
    seen = around_task_starts(s, m)
    run(s)
    assert all(torch.equal(seen[0]["after"]["params"][k], v) for k, v in seen[0]["before"]["params"].items())
    before, after = seen[1]["before"], seen[1]["after"]
    g = s.ctx.generator("head-reset", 1)
    w, b = [sl.draw(g) for sl in s.model.head_slices()]
    assert torch.equal(after["params"]["head.weight"], w) and torch.equal(after["params"]["head.bias"], b)
    assert "head.weight" not in after["opt"] and "head.bias" not in after["opt"]
    for k, v in before["params"].items():
        if not k.startswith("head"):
            assert torch.equal(after["params"][k], v)
    # training went on with fresh optimiser state for the head: 3 steps of task 1 against 6 for the rest
    assert int(s.optimizer.state[s.model.head.weight]["step"]) == 3
    assert int(s.optimizer.state[s.model.linears[0].weight]["step"]) == 6


def test_full_reset():
    s = tiny({"name": "full-reset"}, steps_per_task=3)
    m = s.methods[0]
    params = list(s.model.parameters())
    seen = around_task_starts(s, m)
    run(s)
    assert all(torch.equal(seen[0]["after"]["params"][k], v) for k, v in seen[0]["before"]["params"].items())
    fresh = s.ctx.fresh_model(derived_seed(0, "full-reset", 1))
    for k, v in fresh.state_dict().items():
        assert torch.equal(seen[1]["after"]["params"][k], v)
        assert not torch.equal(seen[1]["before"]["params"][k], v)
    assert seen[1]["before"]["opt"] and not seen[1]["after"]["opt"]
    assert all(p is q for p, q in zip(s.model.parameters(), params, strict=True))  # optimiser still points at them
    assert int(s.optimizer.state[s.model.head.weight]["step"]) == 3  # and trained them after the reset
    assert not torch.equal(s.model.head.weight, fresh.head.weight)


def test_forgotten_sgd_momentum_restarts_exactly_as_a_fresh_buffer():
    """SGD with momentum: a forgotten parameter's next step equals a fresh optimiser's first step
    (buf = grad), the others keep their momentum, and the fused kernel takes the mix."""
    from torch import nn

    from plasticlab.methods.common import forget_optimizer_state

    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(3)), nn.Parameter(torch.randn(3))
    opt = torch.optim.SGD([a, b], lr=0.1, momentum=0.9, fused=True)
    for _ in range(2):
        opt.zero_grad()
        (a.square().sum() + b.pow(3).sum()).backward()
        opt.step()
    forget_optimizer_state(opt, [a])
    a0, b0, buf_b = a.detach().clone(), b.detach().clone(), opt.state[b]["momentum_buffer"].clone()
    opt.zero_grad()
    (a.square().sum() + b.pow(3).sum()).backward()
    ga, gb = a.grad.clone(), b.grad.clone()
    opt.step()
    assert torch.allclose(a, a0 - 0.1 * ga)  # fresh: buf = grad
    assert torch.allclose(b, b0 - 0.1 * (0.9 * buf_b + gb))  # kept momentum


def test_head_reset_with_sgd_momentum_runs():
    s = tiny({"name": "head-reset"}, steps_per_task=3, optim="sgd", overrides=("optim.momentum=0.9",))
    run(s)
    assert torch.isfinite(s.model.head.weight).all()


def test_head_reset_to_zeros():
    s = tiny({"name": "head-reset", "weights": "zeros"}, steps_per_task=3)
    seen = around_task_starts(s, s.methods[0])
    run(s)
    after = seen[1]["after"]["params"]
    assert not after["head.weight"].any() and not after["head.bias"].any()
    assert seen[0]["after"]["params"]["head.weight"].any()  # task 0 keeps its initialisation
