"""Mutually frozen units and sparse weights on planted networks with known answers."""

import math

import pytest
import torch

from plasticlab.diagnostics.frozen import frozen_mask, frozen_stats
from plasticlab.models.mlp import MLP
from plasticlab.units import build

TAU = 0.1


def planted():
    """MLP 8→6→5→3 whose weights are all ±bound (far above τ·σ), then planted zeros:

    frozen units hidden0:2 (W1 row 2, W2 col 2) and hidden1:4 (W2 row 4, Wh col 4);
    sparse: W1[0,0], W2[1,3], Wh[1,0] and hidden0:5's whole incoming row (outgoing intact).
    """
    torch.manual_seed(0)
    model = MLP(8, [6, 5], 3, norm="none")
    w1, w2, wh = model.linears[0].weight, model.linears[1].weight, model.head.weight
    with torch.no_grad():
        for lin in (*model.linears, model.head):
            bound = 1 / math.sqrt(lin.in_features)
            lin.weight.copy_(bound * torch.sign(torch.randn_like(lin.weight)))
        w1[2], w2[:, 2] = 0, 0
        w2[4], wh[:, 4] = 0, 0
        w1[0, 0], w2[1, 3], wh[1, 0] = 0, 0, 0
        w1[5] = 0
    return model, build(model)


def test_planted_masks():
    _, layers = planted()
    assert frozen_mask(layers[0], TAU).tolist() == [False, False, True, False, False, False]
    assert frozen_mask(layers[1], TAU).tolist() == [False, False, False, False, True]


def test_planted_fractions_exact():
    _, layers = planted()
    overall, per = frozen_stats(layers, TAU)
    # distinct weight entries: W1 48 + W2 30 + Wh 15 = 93;
    # frozen entries 8+5 (unit 0:2) + 5+3 (unit 1:4, W2[4,2] shared) = 21
    assert overall["frozen_fraction"].item() == pytest.approx(2 / 11)
    assert overall["frozen_weight_fraction"].item() == pytest.approx(21 / 93)
    assert overall["sparse_fraction"].item() == pytest.approx(11 / 93)
    # hidden0 sees W1 ∪ W2 (78 entries); hidden1 sees W2 ∪ Wh (45 entries)
    assert per["hidden0"]["frozen_fraction"].item() == pytest.approx(1 / 6)
    assert per["hidden0"]["frozen_weight_fraction"].item() == pytest.approx(18 / 78)
    assert per["hidden0"]["sparse_fraction"].item() == pytest.approx(10 / 78)
    assert per["hidden1"]["frozen_fraction"].item() == pytest.approx(1 / 5)
    assert per["hidden1"]["frozen_weight_fraction"].item() == pytest.approx(13 / 45)
    assert per["hidden1"]["sparse_fraction"].item() == pytest.approx(2 / 45)


def test_threshold_is_strict_max_abs_on_init_std():
    _, layers = planted()
    layer = layers[0]
    w_in, w_out = layer.in_weight, layer.out_weight
    theta_in, theta_out = TAU * w_in.init_std, TAU * w_out.init_std
    assert w_in.init_std == pytest.approx(1 / math.sqrt(8) / math.sqrt(3))  # U(±1/√fan_in) has std bound/√3
    with torch.no_grad():
        w_in.tensor[3] = 0.5 * theta_in
        w_out.tensor[:, 3] = 0.5 * theta_out
    assert frozen_mask(layer, TAU)[3]
    with torch.no_grad():
        w_in.tensor[3, 7] = theta_in  # one entry at (not below) the threshold unfreezes the unit
    assert not frozen_mask(layer, TAU)[3]


def test_frozen_plus_sparse_is_share_below_threshold_at_init():
    torch.manual_seed(1)
    layers = build(MLP(30, [40, 40], 7, norm="layernorm"))
    overall, _ = frozen_stats(layers, TAU)
    distinct = {id(s.tensor): s for layer in layers for s in layer.incoming + layer.outgoing if s.is_weight}
    below = sum((s.tensor.abs() < TAU * s.init_std).sum().item() for s in distinct.values())
    total = 30 * 40 + 40 * 40 + 40 * 7
    got = overall["frozen_weight_fraction"].item() + overall["sparse_fraction"].item()
    assert got == pytest.approx(below / total)
    assert overall["frozen_fraction"].item() == 0.0
    # uniform init: P(|w| < τ·b/√3) = τ/√3 ≈ 0.0577, the sparse baseline of a fresh network
    assert overall["sparse_fraction"].item() == pytest.approx(TAU / math.sqrt(3), abs=0.01)


def test_grad_means_over_each_set():
    _, layers = planted()
    grads = {id(s.tensor): torch.ones_like(s.tensor) for layer in layers for s in layer.outgoing}
    w1 = layers[0].in_weight.tensor
    grads[id(w1)] = torch.full_like(w1, 2.0)  # W1 holds 8 frozen and 10 sparse entries
    overall, _ = frozen_stats(layers, TAU, grads)
    assert overall["grad_frozen"].item() == pytest.approx((8 * 2 + 13) / 21)
    assert overall["grad_sparse"].item() == pytest.approx((9 * 2 + 2) / 11)
    assert overall["grad_all"].item() == pytest.approx((48 * 2 + 45) / 93)


def bn_planted():
    """MLP 8→6→5→3 with BatchNorm, weights ±bound, then:

    hidden0:1 — γ = 1e-3 and W2[:, 1] = 1e-3·bound: frozen under BN (incoming weights intact);
    hidden0:2 — W1 row and W2 column ×1e-3, γ = 1: the plain test's frozen unit, live under BN;
    hidden1:3 — γ = 1e-3 only (outgoing head column intact): not frozen.
    """
    torch.manual_seed(0)
    model = MLP(8, [6, 5], 3, norm="batchnorm")
    w1, w2 = model.linears[0].weight, model.linears[1].weight
    with torch.no_grad():
        for lin in (*model.linears, model.head):
            lin.weight.copy_(torch.sign(torch.randn_like(lin.weight)) / math.sqrt(lin.in_features))
        model.norms[0].weight[1] = 1e-3
        w2[:, 1] *= 1e-3
        w1[2] *= 1e-3
        w2[:, 2] *= 1e-3
        model.norms[1].weight[3] = 1e-3
    return model, build(model)


def test_batchnorm_mask_uses_gain_and_row_relative_outgoing():
    model, layers = bn_planted()
    assert frozen_mask(layers[0], TAU).tolist() == [False, True, False, False, False, False]
    assert frozen_mask(layers[1], TAU).tolist() == [False] * 5
    # the same weights without BatchNorm: the plain test finds hidden0:2, not hidden0:1
    plain = MLP(8, [6, 5], 3, norm="none")
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "norms" not in k})
    assert frozen_mask(build(plain)[0], TAU).tolist() == [False, False, True, False, False, False]


def test_batchnorm_mask_is_invariant_to_weight_scale():
    """Shrinking a whole weight tensor (what weight decay does to a BN net) changes no BN unit's state."""
    model, layers = bn_planted()
    before = [frozen_mask(layer, TAU).tolist() for layer in layers]
    with torch.no_grad():
        model.linears[0].weight.mul_(1e-3)
        model.linears[1].weight.mul_(1e-3)
        model.head.weight.mul_(1e-3)
    assert [frozen_mask(layer, TAU).tolist() for layer in layers] == before
    with torch.no_grad():
        model.linears[1].weight.zero_()  # a consumer that reads nothing: every outgoing column is small
    assert frozen_mask(layers[0], TAU).tolist() == [False, True, False, False, False, False]
    model.norms[0].weight.data.fill_(1e-3)
    assert frozen_mask(layers[0], TAU).all()


def test_batchnorm_frozen_unit_gets_tiny_gradients():
    """The known answer behind the criterion: in training mode the BN-frozen unit's gain and outgoing
    weights get gradients orders of magnitude below the other units', the plain-frozen one does not."""
    model, _ = bn_planted()
    model.train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 8, generator=g), torch.randint(0, 3, (256,), generator=g)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    gamma = model.norms[0].weight.grad.abs()
    w2 = model.linears[1].weight.grad.abs()
    others = [0, 3, 4, 5]
    assert gamma[1] < 1e-2 * gamma[others].min()
    assert w2[:, 1].mean() < 1e-2 * w2[:, others].mean()
    assert w2[:, 2].mean() > 1e-1 * w2[:, others].mean()  # small outgoing weights, ordinary gradients


def test_layernorm_and_plain_layers_keep_the_plain_test():
    from plasticlab.diagnostics.frozen import batchnorm_gain

    assert batchnorm_gain(build(MLP(8, [6], 3, norm="layernorm"))[0]) is None
    assert batchnorm_gain(build(MLP(8, [6], 3, norm="none"))[0]) is None
    assert batchnorm_gain(build(MLP(8, [6], 3, norm="batchnorm"))[0]) is not None
