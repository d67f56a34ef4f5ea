"""plasticity-injection (Nikishin et al. 2023): the output is unchanged at injection, afterwards the network
computes h_old(x) + h_new(x) − h_twin(x) with h_old and h_twin frozen, and the unit map covers the frozen part."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from plasticlab import units
from plasticlab.methods.base import MethodContext
from plasticlab.methods.plasticity_injection import PlasticityInjection
from plasticlab.models.mlp import MLP
from plasticlab.registry import UserError


def setup(model, **options):
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    m = PlasticityInjection(**options)
    m.setup(MethodContext(model, opt, units.build(model), 0, torch.device("cpu"), fresh_model=None))
    return m, opt


def train(model, opt, x, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()


def test_output_unchanged_at_injection_then_old_head_frozen_and_new_head_trained():
    torch.manual_seed(0)
    model = MLP(4, [5], 3, norm="none")
    x = torch.randn(8, 4)
    m, opt = setup(model)
    train(model, opt, x, 2)
    out = model(x).detach()
    old = nn.Linear(5, 3)
    old.load_state_dict({"weight": model.head.weight.detach().clone(), "bias": model.head.bias.detach().clone()})
    m.on_task_start(1)
    assert torch.allclose(model(x), out, atol=1e-6)  # the output is unchanged by the injection
    assert not torch.equal(model.head.weight, old.weight)  # the trainable head is a fresh draw
    assert model.head.weight not in opt.state  # with fresh optimiser state
    twin = nn.Linear(5, 3)
    twin.load_state_dict({"weight": model.head.weight.detach().clone(), "bias": model.head.bias.detach().clone()})
    hidden_before = model.linears[0].weight.detach().clone()
    train(model, opt, x, 3)
    assert not torch.equal(model.linears[0].weight, hidden_before)  # the encoder keeps learning
    assert not torch.equal(model.head.weight, twin.weight)  # and so does the new head
    f = model.features(x)
    new = F.linear(f, model.head.weight, model.head.bias)  # the trained head alone (model.head adds the frozen part)
    expected = old(f) + new - twin(f)  # h_old and the twin are the frozen copies from the injection
    assert torch.allclose(model(x), expected, atol=1e-5)
    names = [n for n, _ in model.named_parameters()]
    assert "head.injected_weight" not in names and "head.injected_weight" in model.state_dict()


def test_a_second_injection_freezes_the_whole_current_head():
    torch.manual_seed(1)
    model = MLP(4, [5], 3, norm="none")
    x = torch.randn(8, 4)
    m, opt = setup(model, every_tasks=2)
    m.on_task_start(1)
    assert torch.equal(model.head.injected_weight, torch.zeros(3, 5))  # task 1 is not a multiple of 2
    m.on_task_start(2)
    train(model, opt, x, 2)
    out = model(x).detach()
    m.on_task_start(4)
    assert torch.allclose(model(x), out, atol=1e-6)


def test_unit_reset_clears_the_frozen_outgoing_weights_too():
    torch.manual_seed(2)
    model = MLP(4, [5], 3, norm="none")
    m, _ = setup(model)
    m.on_task_start(1)
    layer = m.ctx_.units[0]
    assert layer.outgoing[-1].tensor is model.head.injected_weight
    frozen = model.head.injected_weight.clone()
    mask = torch.tensor([False, True, False, False, False])
    units.reinit_units(layer, mask, outgoing="zero")
    assert torch.equal(model.head.injected_weight[:, 1], torch.zeros(3))
    assert torch.equal(model.head.injected_weight[:, [0, 2, 3, 4]], frozen[:, [0, 2, 3, 4]])


def test_a_model_without_a_linear_head_with_bias_is_refused():
    with pytest.raises(UserError, match="Linear output layer"):
        setup(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2, bias=False)))


def test_a_plain_module_gets_its_head_from_the_automatic_map():
    """No head_slices(): the Linear producing the output is injected, and the output is unchanged."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3))
    x = torch.randn(8, 4)
    m, opt = setup(model)
    train(model, opt, x, 2)
    out = model(x).detach()
    m.on_task_start(1)
    assert m.head_ is model[2]
    assert torch.allclose(model(x), out, atol=1e-6)
    assert not torch.equal(model[2].weight, model[2].injected_weight)


def test_combines_with_the_other_2024_methods_in_one_method_list():
    """nap, parseval, hare-tortoise, plasticity-injection and redo in one run through the engine."""
    from plasticlab.api import resolve
    from plasticlab.engine import loop
    from tests.conftest import TINY

    methods = ("method=[{name: nap}, {name: parseval}, {name: hare-tortoise, momentum: 0.9}, "
               "{name: plasticity-injection}, {name: redo}]")
    s = loop.setup(resolve(None, TINY + ["tasks.count=2", methods]))
    rows = []
    loop.run([s], [rows.append])
    assert [m.name for m in s.methods] == ["nap", "parseval", "hare-tortoise", "plasticity-injection", "redo"]
    ends = [r for r in rows if r["event"] == "task_end"]
    assert len(ends) == 2 and all(0 <= r["train_acc"] <= 1 for r in ends)
    assert s.model.head.injected_weight.abs().sum() > 0  # injected at task 1


def test_compiled_run_equals_the_eager_run_with_a_crelu_model(monkeypatch):
    """engine.compile compiles forward and loss (the hook and the CReLU included); the numbers are the eager run's."""
    from plasticlab.api import resolve
    from plasticlab.engine import accel, loop
    from tests.conftest import TINY

    monkeypatch.setattr(accel, "BACKEND", "aot_eager")  # why: the same tracing as inductor, no C++ build
    sets = TINY + ["tasks.count=2", "model.activation=crelu", "method.name=plasticity-injection"]
    eager, compiled = [], []
    loop.run([loop.setup(resolve(None, sets))], [eager.append])
    loop.run([loop.setup(resolve(None, sets + ["engine.compile=true"]))], [compiled.append])
    assert [r["event"] for r in compiled] == [r["event"] for r in eager]
    for a, b in zip(eager, compiled, strict=True):
        if a["event"] == "epoch":
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
