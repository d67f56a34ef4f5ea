"""Shrink & Perturb equals θ ← s·θ + σ·ε under the method's derived generator.

The runs are the engine's (``loop.run``); ``spy`` looks at the parameters right before and right
after the engine's call of the hook that applies it."""

import torch

from plasticlab.methods.common import whole_tensor_inits
from plasticlab.seeding import derived_seed
from tests.methods.methods_driver import run, snapshot, spy, tiny


def around(s, m, hook: str) -> dict:
    """Spy on ``m.<hook>``: parameters (and optimiser state) before/after each call, by its argument."""
    seen: dict = {}

    def params():
        return [p.detach().clone() for p in s.model.parameters()]

    spy(m, hook, lambda k, *_: seen.update({k: {"before": params(), "opt": snapshot(s.model, s.optimizer)["opt"]}}),
        lambda k, *_: seen[k].update(after=params(), opt_after=snapshot(s.model, s.optimizer)["opt"]))
    return seen


def test_normal_noise_at_task_start_matches_formula():
    s = tiny({"name": "shrink-perturb", "shrink": 0.8, "noise": 0.05})
    m = s.methods[0]
    seen = around(s, m, "on_task_start")
    run(s)
    assert sorted(seen) == [0, 1]
    first = seen[0]  # the first task is left alone
    assert all(torch.equal(a, b) for a, b in zip(first["after"], first["before"], strict=True))
    g = s.ctx.generator("shrink-perturb", "task_start", 1)
    for a, b in zip(seen[1]["after"], seen[1]["before"], strict=True):
        eps = torch.randn(b.shape, generator=g)
        torch.testing.assert_close(a, 0.8 * b + 0.05 * eps, rtol=0, atol=1e-7)
    assert seen[1]["opt"]["head.weight"]["exp_avg"].abs().sum() > 0
    assert torch.equal(seen[1]["opt_after"]["head.weight"]["exp_avg"], seen[1]["opt"]["head.weight"]["exp_avg"])


def test_init_noise_draws_from_each_parameters_init():
    s = tiny({"name": "shrink-perturb", "shrink": 0.5, "noise": 1.0, "noise_dist": "init", "when": "task_end",
              "reset_optimizer": True}, tasks=1)
    m = s.methods[0]
    inits = whole_tensor_inits(s.model, s.unit_map)
    assert inits is not None and len(inits) == len(list(s.model.parameters()))
    seen = around(s, m, "on_task_end")
    run(s)
    assert sorted(seen) == [0]
    g = s.ctx.generator("shrink-perturb", "task_end", 0)
    for p, a, b in zip(s.model.parameters(), seen[0]["after"], seen[0]["before"], strict=True):
        torch.testing.assert_close(a, 0.5 * b + inits[id(p)].draw(g), rtol=0, atol=1e-7)
    assert seen[0]["opt"] and not seen[0]["opt_after"]
    assert len(s.optimizer.state) == 0
    i = [n for n, _ in s.model.named_parameters()].index("norms.0.weight")
    # a norm gain is perturbed by its init, the constant 1
    torch.testing.assert_close(seen[0]["after"][i], 0.5 * seen[0]["before"][i] + 1.0)


def test_init_noise_falls_back_to_a_fresh_model():
    s = tiny({"name": "shrink-perturb", "shrink": 0.5, "noise": 0.1, "noise_dist": "init", "when": "task_end"},
             tasks=1)
    m = s.methods[0]
    m.inits_ = None  # as for a model the unit map does not fully describe
    seen = around(s, m, "on_task_end")
    run(s)
    fresh = s.ctx.fresh_model(derived_seed(0, "shrink-perturb", "task_end", 0))
    for a, b, q in zip(seen[0]["after"], seen[0]["before"], fresh.parameters(), strict=True):
        torch.testing.assert_close(a, 0.5 * b + 0.1 * q.detach(), rtol=0, atol=1e-7)


def test_every_step_mode():
    s = tiny({"name": "shrink-perturb", "shrink": 0.9, "noise": 0.01, "when": "step", "every": 2}, tasks=1,
             steps_per_task=5)
    m = s.methods[0]
    seen = around(s, m, "after_step")
    run(s)
    assert sorted(seen) == [1, 3]  # the engine calls it after every 2nd step only (steps numbered 0–4)
    for k in seen:
        g = s.ctx.generator("shrink-perturb", "step", k)
        for a, b in zip(seen[k]["after"], seen[k]["before"], strict=True):
            torch.testing.assert_close(a, 0.9 * b + 0.01 * torch.randn(b.shape, generator=g), rtol=0, atol=1e-7)
