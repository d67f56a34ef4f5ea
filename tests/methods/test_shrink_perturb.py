"""Shrink & Perturb equals θ ← s·θ + σ·ε under the method's derived generator."""

import torch

from plasticlab.methods.common import whole_tensor_inits
from plasticlab.methods.shrink_perturb import ShrinkPerturb
from tests.methods.methods_driver import Driver


def test_normal_noise_at_task_start_matches_formula():
    m = ShrinkPerturb(shrink=0.8, noise=0.05)
    d = Driver([m])
    d.step(0)
    before = [p.detach().clone() for p in d.model.parameters()]
    m.on_task_start(0)  # the first task is left alone
    assert all(torch.equal(p, b) for p, b in zip(d.model.parameters(), before, strict=True))
    moments = d.optimizer.state[d.model.head.weight]["exp_avg"].clone()
    m.on_task_start(1)
    g = d.ctx.generator("shrink-perturb", "task_start", 1)
    for p, b in zip(d.model.parameters(), before, strict=True):
        eps = torch.randn(b.shape, generator=g)
        torch.testing.assert_close(p.detach(), 0.8 * b + 0.05 * eps, rtol=0, atol=1e-7)
    assert torch.equal(d.optimizer.state[d.model.head.weight]["exp_avg"], moments)  # state kept


def test_init_noise_draws_from_each_parameters_init():
    m = ShrinkPerturb(shrink=0.5, noise=1.0, noise_dist="init", when="task_end", reset_optimizer=True)
    d = Driver([m])
    d.step(0)
    inits = whole_tensor_inits(d.model, d.units)
    assert inits is not None and len(inits) == len(list(d.model.parameters()))
    before = [p.detach().clone() for p in d.model.parameters()]
    m.on_task_end(2)
    g = d.ctx.generator("shrink-perturb", "task_end", 2)
    for p, b in zip(d.model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), 0.5 * b + inits[id(p)].draw(g), rtol=0, atol=1e-7)
    assert len(d.optimizer.state) == 0
    i = [n for n, _ in d.model.named_parameters()].index("norms.0.weight")
    # a norm gain is perturbed by its init, the constant 1
    torch.testing.assert_close(d.model.norms[0].weight.detach(), 0.5 * before[i] + 1.0)


def test_init_noise_falls_back_to_a_fresh_model():
    m = ShrinkPerturb(shrink=0.5, noise=0.1, noise_dist="init", when="task_end")
    d = Driver([m])
    m.inits_ = None  # as for a model the unit map does not fully describe
    before = [p.detach().clone() for p in d.model.parameters()]
    m.on_task_end(0)
    from plasticlab.seeding import derived_seed

    fresh = d.ctx.fresh_model(derived_seed(0, "shrink-perturb", "task_end", 0))
    for p, b, q in zip(d.model.parameters(), before, fresh.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), 0.5 * b + 0.1 * q.detach(), rtol=0, atol=1e-7)


def test_every_step_mode():
    m = ShrinkPerturb(shrink=0.9, noise=0.01, when="step", every=2)
    d = Driver([m])
    x, y = d.batch(3)
    d.optimise(x, y)
    before = [p.detach().clone() for p in d.model.parameters()]
    d.after(3, x)  # 2 ∤ 3: not called
    assert all(torch.equal(p, b) for p, b in zip(d.model.parameters(), before, strict=True))
    d.after(4, x)
    g = d.ctx.generator("shrink-perturb", "step", 4)
    for p, b in zip(d.model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), 0.9 * b + 0.01 * torch.randn(b.shape, generator=g), rtol=0, atol=1e-7)
