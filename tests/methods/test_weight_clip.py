"""weight-clip (Elsayed et al. 2024): a constructed case with known bounds, and the method through every
step path (single, packed, compiled) and as a transfer intervention."""

import math

import pytest
import torch

from plasticlab import units
from plasticlab.api import resolve
from plasticlab.engine import accel, loop
from plasticlab.methods.base import MethodContext
from plasticlab.methods.weight_clip import WeightClip
from plasticlab.models.mlp import MLP
from tests.conftest import TINY


def test_known_bounds_on_a_constructed_mlp():
    """MLP 4→2→3 with LayerNorm: hidden weights U(±1/2), head U(±1/√2); norm parameters are left alone."""
    model = MLP(4, [2], 3, norm="layernorm")
    with torch.no_grad():
        model.linears[0].weight.copy_(torch.tensor([[0.1, -0.9, 2.0, -0.3], [0.0, 0.26, -0.24, 5.0]]))
        model.linears[0].bias.fill_(-3.0)
        model.head.weight.fill_(0.6)
        model.norms[0].weight.fill_(4.0)
    unit_map = units.build(model)
    opt = torch.optim.Adam(model.parameters())
    m = WeightClip(kappa=0.5)
    m.setup(MethodContext(model, opt, unit_map, 0, torch.device("cpu"), fresh_model=None))
    m.after_step(0, torch.zeros(1, 4))
    b = 0.5 * 0.5  # κ · 1/√fan_in(4)
    assert torch.equal(model.linears[0].weight, torch.tensor([[0.1, -b, b, -b], [0.0, b, -0.24, b]]))
    assert torch.equal(model.linears[0].bias, torch.full((2,), -b))  # a Linear bias: the same U(±1/√fan_in)
    assert torch.allclose(model.head.weight, torch.full((3, 2), 0.5 / math.sqrt(2)))
    assert torch.equal(model.norms[0].weight, torch.full((2,), 4.0))  # constant init: not clipped


def largest_ratio(model) -> float:
    """max over linear layers of max|w| / (1/√fan_in)."""
    layers = [*model.linears, model.head]
    return max(float(lin.weight.detach().abs().max()) * math.sqrt(lin.in_features) for lin in layers)


def test_through_the_engine_weights_stay_within_kappa_bounds():
    sets = TINY + ["tasks.count=2", "diagnostics.every=never", "optim.lr=1e-2"]
    plain, clipped = loop.setup(resolve(None, sets)), loop.setup(resolve(None, sets + ["method.name=weight-clip"]))
    loop.run([plain], [lambda r: None])
    loop.run([clipped], [lambda r: None])
    assert largest_ratio(plain.model) > 1.5  # without clipping, weights leave their init range
    assert largest_ratio(clipped.model) <= 1.0 + 1e-6


def test_packed_and_compiled_runs_equal_the_single_run(monkeypatch):
    monkeypatch.setattr(accel, "BACKEND", "aot_eager")  # why: the same tracing as inductor, no C++ build
    sets = TINY + ["tasks.count=2", "method={name: weight-clip, kappa: 0.5}"]
    single, compiled, pack = [], [], [[], []]
    loop.run([loop.setup(resolve(None, sets))], [single.append])
    loop.run([loop.setup(resolve(None, sets + ["engine.compile=true"]))], [compiled.append])
    loop.run(loop.setup_pack([resolve(None, sets), resolve(None, sets + ["seed=1"])]), [r.append for r in pack])
    for other in (compiled, pack[0]):
        assert [r["event"] for r in other] == [r["event"] for r in single]
        for a, b in zip(single, other, strict=True):
            if a["event"] == "epoch":
                assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def test_transfer_intervention_clips_once():
    from plasticlab.transfer.config import interventions
    from plasticlab.transfer.pipeline import apply_intervention, load_transfer_config

    assert "weight-clip" in interventions()
    cfg = load_transfer_config({"source": {"model": {"name": "mlp", "hidden": [8]}},
                                "target": {"steps": 1}, "interventions": [{"name": "weight-clip", "kappa": 0.5}]})
    model = MLP(64, [8], 10)
    with torch.no_grad():
        model.head.weight.fill_(1.0)
    apply_intervention(cfg.interventions[0], model, seed=0, fresh_model=None, device=torch.device("cpu"))
    assert torch.allclose(model.head.weight, torch.full_like(model.head.weight, 0.5 / math.sqrt(8)))
