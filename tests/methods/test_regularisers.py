"""l2, l2-init and spectral: gradients equal the analytic ones; spectral pulls σ_max to its target."""

import torch

from plasticlab.methods.l2 import L2
from plasticlab.methods.l2_init import L2Init
from plasticlab.methods.spectral import Spectral, power_iteration_
from tests.methods.methods_driver import Driver, mlp_builder


def grads_of(d: Driver, method) -> dict[str, torch.Tensor | None]:
    """The gradient the method adds to a model with no gradients yet."""
    d.model.zero_grad(set_to_none=True)
    method.add_grad()
    return {n: p.grad for n, p in d.model.named_parameters()}


def test_add_grad_adds_to_the_existing_gradient():
    m = L2(coef=0.01)
    d = Driver([m])
    for p in d.model.parameters():
        p.grad = torch.ones_like(p)
    m.add_grad()
    for p in d.model.parameters():
        torch.testing.assert_close(p.grad, 1 + 2 * 0.01 * p.detach(), rtol=0, atol=1e-7)


def test_l2_gradient_is_2_lambda_theta():
    m = L2(coef=0.01)
    d = Driver([m])
    for n, g in grads_of(d, m).items():
        p = dict(d.model.named_parameters())[n]
        torch.testing.assert_close(g, 2 * 0.01 * p.detach(), rtol=0, atol=1e-7)


def test_l2_excluding_bias_and_norm():
    m = L2(coef=0.5, exclude_bias_norm=True)
    d = Driver([m])
    grads = grads_of(d, m)
    params = dict(d.model.named_parameters())
    penalised = {n for n in grads if n.endswith("weight") and not n.startswith("norms")}
    assert penalised == {"linears.0.weight", "linears.1.weight", "head.weight"}
    for n, g in grads.items():
        if n in penalised:
            torch.testing.assert_close(g, params[n].detach(), rtol=0, atol=1e-7)  # 2·0.5·θ
        else:
            assert g is None


def test_l2_init_gradient_is_2_lambda_delta():
    m = L2Init(coef=0.1)
    d = Driver([m])
    start = {n: p.detach().clone() for n, p in d.model.named_parameters()}
    assert all(float(g.abs().max()) == 0.0 for g in grads_of(d, m).values())
    with torch.no_grad():
        for p in d.model.parameters():
            p.add_(torch.linspace(-1, 1, p.numel()).view_as(p))
    for n, g in grads_of(d, m).items():
        p = dict(d.model.named_parameters())[n].detach()
        torch.testing.assert_close(g, 2 * 0.1 * (p - start[n]), rtol=0, atol=1e-6)


def test_power_iteration_converges_to_spectral_norm():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, 5, generator=g)
    u, v = torch.randn(7, generator=g), torch.randn(5, generator=g)
    power_iteration_(w, u, v, 200)
    torch.testing.assert_close(u @ w @ v, torch.linalg.matrix_norm(w, 2), rtol=1e-5, atol=0)


def test_spectral_estimates_track_the_weights_and_conv_kernels_are_matrices():
    conv = torch.nn.Conv2d(3, 4, 3)
    m = Spectral(coef=0.0, iterations=3)
    d = Driver([m])
    d.model.conv = conv  # an extra 4-d parameter, read as (4, 27)
    m.setup(d.ctx)
    with torch.no_grad():
        d.model.linears[0].weight.mul_(torch.linspace(0.5, 2.0, 6))  # change the matrix
    for _ in range(100):
        m.add_grad()
    for p, s in zip(m.weights_, m.sigmas(), strict=True):
        torch.testing.assert_close(s, torch.linalg.matrix_norm(p.detach().reshape(p.shape[0], -1), 2),
                                   rtol=1e-4, atol=0)


def test_spectral_default_target_is_init_sigma_and_gradient_is_analytic():
    m = Spectral(coef=0.3, iterations=1)
    d = Driver([m])
    for p, t in zip(m.weights_, m.target_, strict=True):
        torch.testing.assert_close(t, torch.linalg.matrix_norm(p.detach().reshape(p.shape[0], -1), 2))
    assert all(float(g.abs().max()) < 1e-5 for g in grads_of(d, m).values() if g is not None)  # σ = target
    with torch.no_grad():
        d.model.head.weight.mul_(2.0)
    grads = grads_of(d, m)
    w = d.model.head.weight.detach()
    i = next(k for k, p in enumerate(m.weights_) if p is d.model.head.weight)
    u, v, t = m.u_[i], m.v_[i], m.target_[i]
    sigma = u @ w @ v
    torch.testing.assert_close(sigma, 2 * t, rtol=1e-5, atol=0)  # exact vectors survive scaling
    torch.testing.assert_close(grads["head.weight"], 2 * 0.3 * (sigma - t) * torch.outer(u, v), rtol=1e-5, atol=1e-7)
    assert grads["head.bias"] is None


def test_spectral_moves_sigma_towards_a_fixed_target():
    m = Spectral(coef=1.0, iterations=2, target=0.5)
    d = Driver([m], build=mlp_builder(hidden=(8,)))
    opt = torch.optim.SGD(d.model.parameters(), lr=0.05)
    gaps = []
    for _ in range(250):
        opt.zero_grad()
        m.add_grad()
        opt.step()
        gaps.append([abs(float(s) - 0.5) for s in m.sigmas()])
    first, last = gaps[0], gaps[-1]
    for a, b in zip(first, last, strict=True):
        assert b < 0.05 * a
    for p in m.weights_:
        true = float(torch.linalg.matrix_norm(p.detach(), 2))
        assert abs(true - 0.5) < 0.005  # the true σ_max too, once the estimates caught up
