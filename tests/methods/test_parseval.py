"""parseval (Chung et al. 2024): the penalty on constructed matrices, its closed-form gradient against
autograd, and which matrices it regularises."""

import torch

from plasticlab import units
from plasticlab.methods.base import MethodContext
from plasticlab.methods.parseval import Parseval, parseval_penalty
from plasticlab.models.mlp import MLP


def context(model) -> MethodContext:
    return MethodContext(model, torch.optim.SGD(model.parameters(), lr=0.1), units.build(model), 0,
                         torch.device("cpu"), fresh_model=None)


def test_penalty_is_zero_on_scaled_orthogonal_rows_and_known_elsewhere():
    q, _ = torch.linalg.qr(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)))  # (5, 3) orthonormal cols
    w = 1.5 * q.t()  # rows orthogonal with squared norm 2.25
    assert parseval_penalty(w, 2.25) < 1e-10
    # W = diag(1, 2) (2 × 2): W Wᵀ − I = diag(0, 3) → ‖·‖²_F = 9
    assert parseval_penalty(torch.diag(torch.tensor([1.0, 2.0])), 1.0) == 9.0


def test_closed_form_gradient_equals_autograd_and_only_hidden_layers_are_regularised():
    model = MLP(5, [3, 4], 2, norm="none")
    with torch.no_grad():
        model.linears[0].weight.copy_(torch.arange(15.0).view(3, 5).sin())
    m = Parseval(coef=0.3, scale=0.7)
    m.setup(context(model))
    assert [p.shape for p in m.weights_] == [(3, 5), (4, 3)]  # the head (2 × 4) is not regularised
    reference = [p.detach().clone().requires_grad_() for p in m.weights_]
    loss = 0.3 * sum(parseval_penalty(p, 0.7) for p in reference)
    loss.backward()
    for p in model.parameters():
        p.grad = torch.ones_like(p)  # add_grad adds to an existing gradient
    m.add_grad()
    for p, r in zip(m.weights_, reference, strict=True):
        assert torch.allclose(p.grad - 1.0, r.grad, atol=1e-5)
    assert torch.equal(model.head.weight.grad, torch.ones_like(model.head.weight))
    assert torch.allclose(m.penalty(), loss / 0.3)


def test_default_scale_is_the_mean_squared_row_norm_at_setup():
    model = MLP(4, [2], 3, norm="none")
    with torch.no_grad():
        model.linears[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 1.0]]))
    m = Parseval()
    m.setup(context(model))
    assert m.scale_[0].item() == 3.0  # (1 + 5) / 2
    # rows orthogonal, norms 1 and 5 against s = 3: W Wᵀ − 3I = diag(−2, 2) → penalty 8
    assert m.penalty().item() == 8.0
