"""Ranks on matrices with known singular values, the feature norm, and norms."""

import math

import pytest
import torch

from plasticlab.diagnostics.rank import effective_rank, feature_norm, l2_norm, singular_values, srank, stable_rank


def with_singular_values(s: list[float], n: int = 40, d: int = 12, seed: int = 0) -> torch.Tensor:
    """Φ = U diag(s) Vᵀ with random orthonormal U (n × r), V (d × r)."""
    g = torch.Generator().manual_seed(seed)
    r = len(s)
    u = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64)).Q
    return u @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ v.T


def test_known_spectrum():
    sv = singular_values(with_singular_values([4.0, 2.0, 1.0, 1.0]))
    assert sv[:4].tolist() == pytest.approx([4, 2, 1, 1])
    # p = [1/2, 1/4, 1/8, 1/8] → H = 1.75 ln 2 → exp(H) = 2^1.75
    assert effective_rank(sv).item() == pytest.approx(2**1.75)
    assert srank(sv).item() == 4  # cumulative mass [.5, .75, .875, 1] reaches .99 at k = 4
    assert srank(sv, delta=0.2).item() == 3
    assert stable_rank(sv).item() == pytest.approx(22 / 16)


def test_flat_spectrum_all_ranks_equal_dimension():
    sv = singular_values(with_singular_values([3.0] * 10))
    assert effective_rank(sv).item() == pytest.approx(10)
    assert srank(sv).item() == 10
    assert stable_rank(sv).item() == pytest.approx(10)


def test_srank_boundary_counts_exact_99_percent():
    sv = singular_values(with_singular_values([99.0, 1.0]))
    assert srank(sv).item() == 1  # 99/100 ≥ 0.99 exactly
    sv = singular_values(with_singular_values([98.0, 1.0, 1.0]))
    assert srank(sv).item() == 2


def test_rank_one_and_zero():
    sv = singular_values(with_singular_values([5.0]))
    assert (effective_rank(sv).item(), srank(sv).item(), stable_rank(sv).item()) == pytest.approx((1, 1, 1))
    sv = singular_values(torch.zeros(6, 4))
    assert (effective_rank(sv).item(), srank(sv).item(), stable_rank(sv).item()) == (0, 0, 0)


def test_l2_norm():
    assert l2_norm([torch.tensor([3.0]), torch.tensor([[4.0, 0.0]])]).item() == pytest.approx(5.0)
    assert l2_norm([]).item() == 0.0
    assert math.isclose(l2_norm([torch.ones(100)]).item(), 10.0)


def test_feature_norm_is_the_mean_row_norm():
    phi = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -2.0, 0.0]])
    assert feature_norm(phi).item() == pytest.approx((5 + 0 + 1 + 2) / 4)  # not ‖Φ‖_F / N, not ‖mean φ‖
    assert feature_norm(torch.zeros(5, 3)).item() == 0.0
    with pytest.raises(ValueError, match="feature matrix"):
        feature_norm(torch.zeros(2, 3, 4))
