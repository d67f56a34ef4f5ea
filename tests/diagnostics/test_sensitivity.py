"""Input sensitivity: linear models (‖W‖_F), finite differences, projection estimate."""

import pytest
import torch
from torch import nn

from plasticlab.diagnostics.sensitivity import input_sensitivity, jacobian_sq_norms


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_mlp(n_in=6, n_out=4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, 16), nn.Tanh(), nn.LayerNorm(16), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, n_out)).double()


def test_linear_model_exact_is_frobenius_norm():
    torch.manual_seed(0)
    lin = nn.Linear(7, 5)
    x = torch.randn(9, 7)
    expected = torch.linalg.matrix_norm(lin.weight.detach()).item()
    assert input_sensitivity(lin, x, mode="exact").item() == pytest.approx(expected, rel=1e-6)
    assert jacobian_sq_norms(lin, x, mode="exact").tolist() == pytest.approx([expected**2] * 9, rel=1e-6)


def test_linear_model_projection_is_unbiased_for_squared_norm():
    torch.manual_seed(0)
    lin = nn.Linear(7, 5)
    x = torch.randn(256, 7)
    sq = jacobian_sq_norms(lin, x, mode="projection", projections=64, generator=gen())
    expected = torch.linalg.matrix_norm(lin.weight.detach()).item() ** 2
    assert sq.mean().item() == pytest.approx(expected, rel=0.05)  # 16k samples, relative s.e. ≲ 1.1%


def test_exact_matches_central_finite_differences():
    model = small_mlp()
    x = torch.randn(5, 6, dtype=torch.float64, generator=gen(1))
    h = 1e-6
    fd = []
    for xi in x:
        cols = [(model(xi + h * e) - model(xi - h * e)) / (2 * h) for e in torch.eye(6, dtype=torch.float64)]
        fd.append(torch.stack(cols, 1).pow(2).sum().item())
    with torch.no_grad():
        got = jacobian_sq_norms(model, x, mode="exact").tolist()
    assert got == pytest.approx(fd, rel=1e-6)


def test_projection_estimate_close_to_exact_with_many_projections():
    model = small_mlp()
    x = torch.randn(16, 6, dtype=torch.float64, generator=gen(2))
    exact = input_sensitivity(model, x, mode="exact").item()
    est = input_sensitivity(model, x, mode="projection", projections=400, generator=gen(3)).item()
    assert est == pytest.approx(exact, rel=0.03)


def test_auto_picks_exact_for_small_outputs_and_projection_for_large():
    model = small_mlp()
    x = torch.randn(4, 6, dtype=torch.float64, generator=gen(4))
    assert torch.equal(jacobian_sq_norms(model, x, mode="auto"), jacobian_sq_norms(model, x, mode="exact"))
    wide = small_mlp(n_out=65)
    auto = jacobian_sq_norms(wide, x, mode="auto", projections=3, generator=gen(5))
    proj = jacobian_sq_norms(wide, x, mode="projection", projections=3, generator=gen(5))
    assert torch.equal(auto, proj)


def test_chunking_does_not_change_the_answer():
    model = small_mlp()
    x = torch.randn(10, 6, dtype=torch.float64, generator=gen(6))
    a = jacobian_sq_norms(model, x, mode="exact", chunk=3)
    b = jacobian_sq_norms(model, x, mode="exact", chunk=100)
    assert torch.allclose(a, b)


def test_no_grad_left_on_parameters():
    model = small_mlp()
    x = torch.randn(4, 6, dtype=torch.float64, generator=gen(7))
    input_sensitivity(model, x, mode="exact")
    input_sensitivity(model, x, mode="projection", generator=gen())
    assert all(p.grad is None for p in model.parameters())
