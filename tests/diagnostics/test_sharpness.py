"""sharpness: power iteration with Hessian-vector products against exact Hessians."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics import measure
from plasticlab.diagnostics.sharpness import top_hessian_eigenvalue
from plasticlab.models.mlp import MLP
from plasticlab.tasks.base import classification_loss
from plasticlab.units import build


def exact_top_eigenvalues(model: nn.Module, loss_of_output) -> torch.Tensor:
    """Eigenvalues of the full Hessian of ``loss_of_output(model(·))`` over the flattened parameters."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            parts[n] = flat[i:i + s.numel()].reshape(s)
            i += s.numel()
        return loss_of_output(lambda x: functional_call(model, parts, (x,)))

    h = torch.autograd.functional.hessian(f, flat0)
    return torch.linalg.eigvalsh(h)


def test_linear_regression_quadratic_matches_exact_top_eigenvalue():
    """MSE of a linear model is a quadratic with H = (2/n)·[X 1]ᵀ[X 1] (weight and bias)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1, 1, 0.5, 0.2, 1],
                                                                             dtype=torch.float64)
    y = torch.randn(50, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(6, 1).double()
    xb = torch.cat([x, torch.ones(50, 1, dtype=torch.float64)], 1)
    want = torch.linalg.eigvalsh(2 / 50 * xb.T @ xb).max()
    exact = exact_top_eigenvalues(model, lambda fn: ((fn(x) - y) ** 2).mean()).max()
    assert exact.item() == pytest.approx(want.item(), rel=1e-10)
    lam = top_hessian_eigenvalue(lambda: ((model(x) - y) ** 2).mean(), list(model.parameters()), steps=200)
    assert lam.item() == pytest.approx(want.item(), rel=1e-8)


def test_small_tanh_net_cross_entropy_matches_exact_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    ev = exact_top_eigenvalues(model, lambda fn: nn.functional.cross_entropy(fn(x), y))
    assert ev.max() > ev.min().abs()  # the top eigenvalue is the largest in magnitude: power iteration finds it
    lam = top_hessian_eigenvalue(lambda: nn.functional.cross_entropy(model(x), y), list(model.parameters()),
                                 steps=500)
    assert lam.item() == pytest.approx(ev.max().item(), rel=1e-5)


def test_measure_reports_sharpness_only_when_on_and_has_no_side_effects():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5, norm="none")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20, generator=g), torch.randint(0, 5, (64,), generator=g)
    units = build(model)
    assert "sharpness" not in measure(model, units, x, y, classification_loss, DiagnosticsConfig())
    for p in model.parameters():
        p.grad = torch.full_like(p, 3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    r = measure(model, units, x, y, classification_loss, DiagnosticsConfig(sharpness=30))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(p.grad, torch.full_like(p, 3.0)) for p in model.parameters())
    assert r["sharpness"] > 0
    again = measure(model, units, x, y, classification_loss, DiagnosticsConfig(sharpness=30))
    assert again["sharpness"] == r["sharpness"]  # fixed start vector: deterministic
    # the same value as power iteration with many steps, in float64 (within power-iteration error)
    m64 = MLP(20, [16, 8], 5, norm="none").double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.eval()
    ref = top_hessian_eigenvalue(lambda: classification_loss(m64, x.double(), y)[0], list(m64.parameters()), 300)
    assert r["sharpness"] == pytest.approx(ref.item(), rel=1e-2)
