"""measure(): keys, known answers on planted MLPs, gradient evidence, and no side effects."""

import math

import pytest
import torch
from torch import nn

from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics import METRICS, measure, probe_indices
from plasticlab.models.mlp import MLP
from plasticlab.tasks.base import classification_loss
from plasticlab.units import build, linear_slices


def batch(n=64, d=20, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def plant_frozen_and_sparse(model: MLP, scale: float = 1e-3) -> None:
    """Units hidden0:3 and hidden1:7 get all weights × scale (bias 0); 10% of the deeper
    weight entries elsewhere are set to zero (sparse, not frozen)."""
    layers = build(model)
    with torch.no_grad():
        for layer, k in ((layers[0], 3), (layers[1], 7)):
            unit = torch.arange(layer.count) == k
            for s in layer.incoming + layer.outgoing:
                if s.is_weight:
                    s.tensor.copy_(torch.where(s.unit_mask(unit), s.tensor * scale, s.tensor))
            layer.incoming[1].tensor[k] = 0.0
        g = torch.Generator().manual_seed(1)
        for lin in (*model.linears[1:], model.head):
            lin.weight.masked_fill_(torch.rand(lin.weight.shape, generator=g) < 0.1, 0.0)


def test_frozen_weights_get_orders_of_magnitude_smaller_gradients_than_sparse():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MLP(20, [32, 32], 5, norm="none")
    plant_frozen_and_sparse(model)
    x, y = batch(256)
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert r["frozen_fraction"] == pytest.approx(2 / 64)
    assert r["sparse_fraction"] > 0.05
    assert r["grad_frozen"] < 1e-2 * r["grad_sparse"]  # measured ≈ 1e-3: the partner side is 1e-3 × init
    assert r["grad_sparse"] > 0.3 * r["grad_all"]  # zero but not frozen: ordinary gradients


def test_layernorm_breaks_mutual_freezing():
    """With LayerNorm a unit with tiny incoming weights still outputs −μ/σ (the layer's mean,
    normalised), so its outgoing weights keep O(1) gradients (docs/diagnostics.md)."""
    torch.manual_seed(0)
    model = MLP(20, [32, 32], 5, norm="layernorm")
    plant_frozen_and_sparse(model)
    x, y = batch(256)
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert r["frozen_fraction"] == pytest.approx(2 / 64)
    assert r["grad_frozen"] > 0.05 * r["grad_sparse"]


def test_keys_types_and_layers():
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5)
    x, y = batch()
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert set(r) == set(METRICS) | {"layers"}
    assert list(r["layers"]) == ["hidden0", "hidden1"]
    assert all(isinstance(v, float) for k, v in r.items() if k not in ("layers", "grad_frozen", "param_distance"))
    assert r["grad_frozen"] is None  # no frozen weight at init
    assert r["param_distance"] is None  # no θ₀ given
    assert set(r["layers"]["hidden0"]) >= {"active_fraction", "duplicate_fraction", "param_distance"}
    norm = math.sqrt(sum(p.detach().pow(2).sum().item() for p in model.parameters()))
    assert r["weight_norm"] == pytest.approx(norm)
    w1 = model.linears[1].weight.norm().item()
    assert r["layers"]["hidden1"]["weight_norm"] == pytest.approx(w1, rel=1e-6)
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig(gradients=False))
    assert "grad_frozen" not in r and "grad_all" not in r["layers"]["hidden0"] and "grad_norm" in r
    assert "grad_sparsity" in r  # like grad_norm, from the gradient measure always takes


def test_planted_dead_unit_and_known_grad_norm():
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5, norm="none")
    with torch.no_grad():
        model.linears[0].weight[4] = 0.0
        model.linears[0].bias[4] = -1.0  # relu(−1) = 0 on every input
    x, y = batch()
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert r["layers"]["hidden0"]["dead_fraction"] == 1 / 16
    assert r["dead_fraction"] == 1 / 24
    assert r["layers"]["hidden0"]["dormant_fraction"] >= 1 / 16
    model.zero_grad()
    classification_loss(model, x, y)[0].backward()
    expected = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
    assert r["grad_norm"] == pytest.approx(expected, rel=1e-5)


def test_rank_of_penultimate_features_and_linear_sensitivity():
    """A one-hidden-layer net with identity activation: features = x Wᵀ, sensitivity = ‖W_h W‖_F."""

    class Linear2(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.act, self.head = nn.Linear(6, 4, bias=False), nn.Identity(), nn.Linear(4, 3)

        def features(self, x):
            return self.act(self.inner(x))

        def forward(self, x):
            return self.head(self.features(x))

        def unit_layers(self):
            from plasticlab.units import UnitLayer

            inc, out = linear_slices(self.inner, 0), linear_slices(self.head, 1)
            return [UnitLayer("hidden0", 4, inc, out, self.act)]

    torch.manual_seed(0)
    model = Linear2()
    with torch.no_grad():
        model.inner.weight.copy_(torch.eye(4, 6) * torch.tensor([[3.0], [1.0], [1.0], [1.0]]))
    x = torch.linalg.qr(torch.randn(32, 6)).Q  # orthonormal columns: Φ = x Wᵀ has σ = [3, 1, 1, 1]
    y = torch.randint(0, 3, (32,))
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert r["stable_rank"] == pytest.approx(12 / 9, rel=1e-5)
    assert r["srank"] == 4
    p = torch.tensor([3.0, 1, 1, 1]) / 6
    assert r["effective_rank"] == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)
    expected = torch.linalg.matrix_norm(model.head.weight @ model.inner.weight).item()
    assert r["input_sensitivity"] == pytest.approx(expected, rel=1e-5)


def test_active_fraction_and_feature_norm_of_a_known_relu_net():
    """hidden0 = relu(x) (4 units), hidden1 = relu(hidden0[:, :2]) (2 units) = the features: the
    active shares and feature norms follow from the signs and values of x."""

    class TwoRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.l0, self.a0 = nn.Linear(4, 4, bias=False), nn.ReLU()
            self.l1, self.a1 = nn.Linear(4, 2, bias=False), nn.ReLU()
            self.head = nn.Linear(2, 3)
            with torch.no_grad():
                self.l0.weight.copy_(torch.eye(4))
                self.l1.weight.copy_(torch.eye(2, 4))

        def features(self, x):
            return self.a1(self.l1(self.a0(self.l0(x))))

        def forward(self, x):
            return self.head(self.features(x))

        def unit_layers(self):
            from plasticlab.units import UnitLayer

            return [UnitLayer("hidden0", 4, linear_slices(self.l0, 0), linear_slices(self.l1, 1), self.a0),
                    UnitLayer("hidden1", 2, linear_slices(self.l1, 0), linear_slices(self.head, 1), self.a1)]

    x = torch.tensor([[1.0, -1, 2, -2], [1, -1, 1, 1], [2, 3, -1, -1], [-1, 2, 0, 1],
                      [1, 1, 1, 1], [-1, -1, -1, -1], [0.5, -2, 3, -1], [-3, 4, -1, 2]])
    y = torch.zeros(8, dtype=torch.long)
    model = TwoRelu()
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert r["layers"]["hidden0"]["active_fraction"] == 17 / 32  # positive entries of x (0 is inactive)
    assert r["layers"]["hidden1"]["active_fraction"] == 9 / 16  # positive entries of x[:, :2]
    assert r["active_fraction"] == pytest.approx((4 * 17 / 32 + 2 * 9 / 16) / 6)  # weighted by unit count
    norms = [1, 1, math.sqrt(13), 2, math.sqrt(2), 0, 0.5, 4]  # ‖relu(x[n, :2])‖
    assert r["feature_norm"] == pytest.approx(sum(norms) / 8)
    assert r["dead_fraction"] == 0.0 and r["duplicate_fraction"] == 0.0


def test_measure_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5, norm="batchnorm")
    x, y = batch()
    model.train()
    model(x)  # give BatchNorm non-trivial running stats
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    model.head.weight.grad = None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    units = build(model)
    r = measure(model, units, x, y, classification_loss, DiagnosticsConfig())
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.head.weight.grad is None
    kept = [p for p in model.parameters() if p is not model.head.weight]
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in kept)
    assert all(not m._forward_hooks for m in model.modules())
    model.eval()
    assert measure(model, units, x, y, classification_loss, DiagnosticsConfig()) == r
    assert not model.training


def test_one_host_sync(monkeypatch):
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5)
    x, y = batch()
    units = build(model)
    calls = []
    real = torch.Tensor.tolist

    def fail(*_):
        raise AssertionError("host sync inside measure")

    for name in ("item", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, fail)
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: calls.append(1) or real(t))
    measure(model, units, x, y, classification_loss, DiagnosticsConfig(sensitivity="projection"))
    measure(model, units, x, y, classification_loss, DiagnosticsConfig(sensitivity="exact"))
    assert len(calls) == 2


def test_probe_indices_deterministic_distinct():
    a = probe_indices(0, 500, 100)
    assert torch.equal(a, probe_indices(0, 500, 100))
    assert not torch.equal(a, probe_indices(1, 500, 100))
    assert a.unique().numel() == 100
    assert probe_indices(0, 50, 100).numel() == 50
