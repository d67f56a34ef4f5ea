"""nap (Lyle et al. 2024): after a step every weight tensor is back at its initial norm, norm layers'
gain and offset jointly at theirs, and nothing else moves; a model without norms is refused."""

import pytest
import torch

from plasticlab import units
from plasticlab.api import resolve
from plasticlab.engine import loop
from plasticlab.methods.base import MethodContext
from plasticlab.methods.nap import NaP
from plasticlab.models.mlp import MLP
from plasticlab.registry import UserError
from tests.conftest import TINY


def context(model) -> MethodContext:
    return MethodContext(model, torch.optim.SGD(model.parameters(), lr=0.1), units.build(model), 0,
                         torch.device("cpu"), fresh_model=None)


def test_projection_restores_initial_norms_and_keeps_directions():
    torch.manual_seed(0)
    model = MLP(4, [3, 3], 2, norm="layernorm")
    weights = [*[lin.weight for lin in model.linears], model.head.weight]
    initial = [w.detach().norm() for w in weights]
    m = NaP()
    m.setup(context(model))
    with torch.no_grad():
        for i, w in enumerate(weights):
            w.mul_(2.0 + i).add_(0.01)
        model.norms[0].weight.copy_(torch.tensor([3.0, 0.0, 4.0]))
        model.norms[0].bias.copy_(torch.tensor([0.0, 12.0, 0.0]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m.after_step(0, torch.zeros(1, 4))
    for w, n in zip(weights, initial, strict=True):
        assert abs(w.norm().item() - n.item()) < 1e-6
    for name in ("linears.0.weight", "linears.1.weight", "head.weight"):
        after = model.state_dict()[name]
        assert torch.allclose(after / after.norm(), before[name] / before[name].norm(), atol=1e-7)
    # (γ, β) = (3, 0, 4; 0, 12, 0): joint norm 13 → √3 (the init's ones and zeros)
    scale = 3.0**0.5 / 13.0
    assert torch.allclose(model.norms[0].weight, torch.tensor([3.0, 0.0, 4.0]) * scale)
    assert torch.allclose(model.norms[0].bias, torch.tensor([0.0, 12.0, 0.0]) * scale)
    assert torch.equal(model.norms[1].weight, before["norms.1.weight"])  # already at its initial norm
    for name in ("linears.0.bias", "linears.1.bias", "head.bias"):
        assert torch.equal(model.state_dict()[name], before[name])  # biases are not projected


def test_norm_params_false_leaves_norm_layers_alone():
    model = MLP(4, [3], 2, norm="layernorm")
    m = NaP(norm_params=False)
    m.setup(context(model))
    with torch.no_grad():
        model.norms[0].weight.fill_(5.0)
    m.after_step(0, torch.zeros(1, 4))
    assert torch.equal(model.norms[0].weight, torch.full((3,), 5.0))


def test_a_model_without_norms_is_refused_with_the_fix():
    with pytest.raises(UserError, match="model.norm=layernorm"):
        NaP().setup(context(MLP(4, [3], 2, norm="none")))


def test_through_the_engine_weights_end_at_their_initial_norms():
    s = loop.setup(resolve(None, TINY + ["tasks.count=2", "optim.lr=1e-2", "method.name=nap"]))
    initial = [p.detach().norm().item() for p in s.model.parameters() if p.ndim >= 2]
    plain = loop.setup(resolve(None, TINY + ["tasks.count=2", "optim.lr=1e-2"]))
    loop.run([s], [lambda r: None])
    loop.run([plain], [lambda r: None])
    final = [p.detach().norm().item() for p in s.model.parameters() if p.ndim >= 2]
    grown = [p.detach().norm().item() for p in plain.model.parameters() if p.ndim >= 2]
    assert final == pytest.approx(initial, rel=1e-5)
    assert any(g > 1.2 * i for g, i in zip(grown, initial, strict=True))  # without NaP the norms grow
