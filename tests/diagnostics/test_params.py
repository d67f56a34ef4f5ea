"""Distance from initialisation, gradient sparsity and duplicate units on networks with known answers."""

import math

import pytest
import torch

from plasticlab.api import resolve
from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics import initial_params, measure
from plasticlab.diagnostics.params import distance, duplicate_mask, unit_vectors, zero_fraction
from plasticlab.engine import loop
from plasticlab.models.cnn import ConvNet
from plasticlab.models.mlp import MLP
from plasticlab.registry import UserError
from plasticlab.tasks.base import classification_loss
from plasticlab.units import build
from tests.conftest import run_steps

SMALL = {"tasks": {"family": "permuted-pixels", "count": 2},
         "environment": {"kind": "abrupt", "epochs_per_task": 0.5, "compute_matched": False},
         "model": {"name": "mlp", "hidden": [16, 16]}, "diagnostics": {"probe_size": 64},
         "engine": {"device": "cpu"}}


def batch(n=64, d=20, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


# ---------------------------------------------------------------- param_distance


def test_distance_of_known_shifts():
    a, b = torch.zeros(2, 3), torch.ones(4)
    assert distance([a + 0, b + 0], [a, b]).item() == 0.0
    a2 = a.clone()
    a2[1, 2] = 3.0
    b2 = b.clone()
    b2[0] = 5.0  # shift 4
    assert distance([a2, b2], [a, b]).item() == pytest.approx(5.0)
    assert distance([], []).item() == 0.0
    with pytest.raises(ValueError, match="initial shape"):
        distance([torch.zeros(3)], [torch.zeros(4)])


def test_param_distance_in_measure_total_and_per_layer():
    """θ − θ₀ has one entry 3 in hidden0's weight and one entry 4 in hidden1's bias: ‖·‖ = 5 overall,
    3 for hidden0 and 0 for hidden1 (per layer = the layer's incoming weight tensors only)."""
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5, norm="none")
    init = initial_params(model)
    x, y = batch()
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig(), init=init)
    assert r["param_distance"] == 0.0 and r["layers"]["hidden0"]["param_distance"] == 0.0
    with torch.no_grad():
        model.linears[0].weight[2, 7] += 3.0
        model.linears[1].bias[1] -= 4.0
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig(), init=init)
    assert r["param_distance"] == pytest.approx(5.0, rel=1e-6)
    assert r["layers"]["hidden0"]["param_distance"] == pytest.approx(3.0, rel=1e-6)
    assert r["layers"]["hidden1"]["param_distance"] == 0.0
    assert init["linears.0.weight"][2, 7] != model.linears[0].weight[2, 7]  # θ₀ is a copy, not a view


def test_param_distance_without_init_is_none_and_bad_init_is_refused():
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5)
    x, y = batch()
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert r["param_distance"] is None
    assert all(d["param_distance"] is None for d in r["layers"].values())
    init = initial_params(model)
    del init["head.bias"]
    with pytest.raises(ValueError, match="head.bias"):
        measure(model, build(model), x, y, classification_loss, DiagnosticsConfig(), init=init)


def test_setup_theta0_is_the_seeded_init_or_the_given_model():
    cfg = resolve(SMALL)
    s = loop.setup(cfg)
    again = loop.setup(resolve(SMALL))  # θ₀ is rebuilt from the seed, e.g. on resume
    assert s.init_params.keys() == dict(again.model.named_parameters()).keys()
    assert all(torch.equal(s.init_params[n], p) for n, p in again.model.named_parameters())
    loop.run([s], [lambda row: None])
    assert all(torch.equal(s.init_params[n], p) for n, p in again.model.named_parameters())  # training leaves θ₀
    assert any(not torch.equal(s.init_params[n], p) for n, p in s.model.named_parameters())

    given = MLP(64, [16, 16], 10)  # transfer fine-tuning: θ₀ = the given model's starting parameters
    with torch.no_grad():
        given.head.weight.fill_(0.25)
    t = loop.setup(resolve(SMALL), model=given)
    assert torch.equal(t.init_params["head.weight"], torch.full((10, 16), 0.25))
    assert loop.setup(resolve(SMALL, ["diagnostics.every=never"])).init_params is None


def test_resumed_run_reports_the_uninterrupted_param_distance():
    """θ₀ is rebuilt from the seed by the resumed run's setup (it is not in the checkpoint)."""
    full: list[dict] = []
    loop.run([loop.setup(resolve(SMALL))], [full.append])
    s = loop.setup(resolve(SMALL))
    cut = s.schedule.total_steps - 2  # stopped inside the last task
    states = run_steps([s], cut)
    assert not any("init" in k for k in states[0]) and states[0]["step"] == cut
    resumed: list[dict] = []
    loop.run([loop.setup(resolve(SMALL))], [resumed.append], resumes=states)
    want, got = [r for r in full if r["event"] == "task_end"][-1], [r for r in resumed if r["event"] == "task_end"]
    assert len(got) == 1 and got[0]["param_distance"] == want["param_distance"] > 0
    assert got[0]["layers"] == want["layers"]


# ---------------------------------------------------------------- grad_sparsity


def test_zero_fraction():
    assert zero_fraction([torch.tensor([0.0, 1.0, -0.0]), torch.zeros(2, 2), torch.ones(3)]).item() == 6 / 10
    assert zero_fraction([torch.full((4,), 1e-30)]).item() == 0.0  # tiny is not zero


def test_grad_sparsity_of_a_dead_unit():
    """A dead ReLU unit (weights 0, bias −1) gets zero gradient on its 20 incoming weights, its bias
    and its 8 outgoing weights; every other entry of the gradient is non-zero: 29 of 517."""
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5, norm="none")
    x, y = batch()
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig())
    assert r["grad_sparsity"] == 0.0
    with torch.no_grad():
        model.linears[0].weight[4] = 0.0
        model.linears[0].bias[4] = -1.0
    total = sum(p.numel() for p in model.parameters())
    assert total == 20 * 16 + 16 + 16 * 8 + 8 + 8 * 5 + 5 == 517
    r = measure(model, build(model), x, y, classification_loss, DiagnosticsConfig(gradients=False))
    assert r["grad_sparsity"] == pytest.approx(29 / 517)
    model.zero_grad()
    classification_loss(model, x, y)[0].backward()  # the same count, from .grad
    assert sum((p.grad == 0).sum().item() for p in model.parameters()) == 29


# ---------------------------------------------------------------- duplicate_fraction


def with_cosine(v: torch.Tensor, c: float, seed: int = 0) -> torch.Tensor:
    """A vector of the same norm as v whose cosine with v is exactly c (float64)."""
    v = v.double()
    o = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    o = o - (o @ v) / (v @ v) * v
    o = o / o.norm() * v.norm()
    return c * v + math.sqrt(1 - c * c) * o


def plant_duplicates(model: MLP) -> None:
    """hidden0: unit 5 = 2 × unit 0 (same direction); unit 7 at cosine 1 − 5e-4 from unit 1; unit 9 =
    −unit 2 (opposite: not a duplicate); units 11 and 12 all zero (no direction). Incoming vector =
    weight row + bias."""
    lin = model.linears[0]
    with torch.no_grad():
        lin.weight[5], lin.bias[5] = 2 * lin.weight[0], 2 * lin.bias[0]
        v = with_cosine(torch.cat([lin.weight[1], lin.bias[1:2]]), 1 - 5e-4)
        lin.weight[7], lin.bias[7] = v[:-1].float(), v[-1].float()
        lin.weight[9], lin.bias[9] = -lin.weight[2], -lin.bias[2]
        for k in (11, 12):
            lin.weight[k], lin.bias[k] = 0.0, 0.0


def test_planted_duplicates_and_eps():
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5, norm="none")
    layers = build(model)
    assert not duplicate_mask(layers[0], 1e-3).any()  # random init: no near-copies
    plant_duplicates(model)
    got = duplicate_mask(layers[0], 1e-3)
    assert got.nonzero().flatten().tolist() == [0, 1, 5, 7]  # both units of a pair count
    assert duplicate_mask(layers[0], 1e-4).nonzero().flatten().tolist() == [0, 5]  # 5e-4 > 1e-4
    assert duplicate_mask(layers[0], 0.0).nonzero().flatten().tolist() == [0, 5]  # exact direction at ε = 0
    assert not duplicate_mask(layers[1], 1e-3).any()
    x, y = batch()
    r = measure(model, layers, x, y, classification_loss, DiagnosticsConfig())
    assert r["layers"]["hidden0"]["duplicate_fraction"] == 4 / 16
    assert r["layers"]["hidden1"]["duplicate_fraction"] == 0.0
    assert r["duplicate_fraction"] == 4 / 24
    r = measure(model, layers, x, y, classification_loss, DiagnosticsConfig(duplicate_eps=1e-4))
    assert r["duplicate_fraction"] == 2 / 24


def test_duplicates_ignore_norm_parameters_and_read_conv_kernels():
    """LayerNorm gain/bias (1 and 0 for every unit at init) are not part of the incoming vector;
    a conv channel's vector is its kernel plus its bias."""
    torch.manual_seed(0)
    model = MLP(20, [16, 8], 5, norm="layernorm")
    layers = build(model)
    assert unit_vectors(layers[0]).shape == (16, 21)
    lin = model.linears[0]
    with torch.no_grad():
        lin.weight[3], lin.bias[3] = 0.5 * lin.weight[6], 0.5 * lin.bias[6]
        model.norms[0].weight[3] = 7.0  # a different gain does not make them different units here
    assert duplicate_mask(layers[0], 1e-3).nonzero().flatten().tolist() == [3, 6]

    cnn = ConvNet(3, [4, 6], 5, pool_after=[True, False])
    conv_layers = build(cnn)
    assert unit_vectors(conv_layers[1]).shape == (6, 4 * 9 + 1)
    with torch.no_grad():
        cnn.convs[1].weight[2], cnn.convs[1].bias[2] = 3 * cnn.convs[1].weight[4], 3 * cnn.convs[1].bias[4]
    assert duplicate_mask(conv_layers[1], 1e-3).nonzero().flatten().tolist() == [2, 4]
    assert not duplicate_mask(conv_layers[0], 1e-3).any()


def test_duplicate_eps_is_a_checked_config_key():
    assert DiagnosticsConfig().duplicate_eps == 1e-3
    assert resolve(None, ["diagnostics.duplicate_eps=0.01"]).diagnostics.duplicate_eps == 0.01
    for bad in ("-0.1", "1.5"):
        with pytest.raises(UserError, match="duplicate_eps"):
            resolve(None, [f"diagnostics.duplicate_eps={bad}"])
