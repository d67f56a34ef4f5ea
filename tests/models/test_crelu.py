"""activation: crelu (Abbas et al. 2023): values, widths, and the unit map — a unit owns two output columns
(i and i + units) of its consumer, so a unit reset touches exactly those; its activation is |x| per unit."""

import pytest
import torch

from plasticlab import units
from plasticlab.api import resolve
from plasticlab.config import load_config
from plasticlab.engine import loop
from plasticlab.engine.packed import pack_key
from plasticlab.models.cnn import ConvNet
from plasticlab.models.layers import CReLU
from plasticlab.models.mlp import MLP
from tests.conftest import TINY


def test_values_and_widths():
    assert torch.equal(CReLU()(torch.tensor([[1.0, -2.0, 0.0]])), torch.tensor([[1.0, 0.0, 0.0, 0.0, 2.0, 0.0]]))
    model = MLP(3, [4, 5], 2, norm="layernorm", activation="crelu")
    assert [lin.in_features for lin in [*model.linears, model.head]] == [3, 8, 10]
    assert [lin.out_features for lin in model.linears] == [4, 5]  # hidden = units before concatenation
    assert model(torch.randn(6, 3)).shape == (6, 2)


def test_resetting_a_unit_touches_exactly_its_row_and_its_two_consumer_columns():
    torch.manual_seed(0)
    model = MLP(3, [4], 2, norm="none", activation="crelu")
    layer = units.build(model)[0]
    w_in, b_in, w_out = model.linears[0].weight.clone(), model.linears[0].bias.clone(), model.head.weight.clone()
    assert layer.out_weight.blocks == 2 and layer.count == 4
    assert torch.equal(layer.out_weight.rows()[1], torch.stack([w_out[:, 1], w_out[:, 5]]).flatten())
    mask = torch.tensor([False, True, False, False])
    units.reinit_units(layer, mask, outgoing="zero", generator=torch.Generator().manual_seed(1))
    zeroed = [1, 5]
    kept = [0, 2, 3, 4, 6, 7]
    assert torch.equal(model.head.weight[:, zeroed], torch.zeros(2, 2))
    assert torch.equal(model.head.weight[:, kept], w_out[:, kept])
    assert not torch.equal(model.linears[0].weight[1], w_in[1])  # its incoming row is re-drawn
    assert torch.equal(model.linears[0].weight[[0, 2, 3]], w_in[[0, 2, 3]])
    assert torch.equal(model.linears[0].bias[[0, 2, 3]], b_in[[0, 2, 3]])


def test_conv_units_own_two_channel_blocks_of_the_next_layer():
    torch.manual_seed(0)
    model = ConvNet(1, [2, 3], 5, pool_after=[True, True], activation="crelu", spatial=2, hidden=[4])
    assert model.convs[1].in_channels == 4 and model.linears[0].in_features == 3 * 2 * 2 * 2
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 5)
    conv0, conv1 = units.build(model)[:2]
    k, w = model.convs[1].weight.clone(), model.linears[0].weight.clone()
    units.reinit_units(conv0, torch.tensor([True, False]), outgoing="zero")
    assert torch.equal(model.convs[1].weight[:, [0, 2]], torch.zeros(3, 2, 3, 3))  # channels 0 and 2 + 0
    assert torch.equal(model.convs[1].weight[:, [1, 3]], k[:, [1, 3]])
    units.reinit_units(conv1, torch.tensor([False, True, False]), outgoing="zero")
    cols = [4, 5, 6, 7, 16, 17, 18, 19]  # channel 1 and 3 + 1, spatial² = 4 columns each
    assert torch.equal(model.linears[0].weight[:, cols], torch.zeros(4, 8))
    rest = [c for c in range(24) if c not in cols]
    assert torch.equal(model.linears[0].weight[:, rest], w[:, rest])


def test_the_units_activation_is_the_input_so_abs_is_the_sum_of_both_halves():
    model = MLP(3, [4], 2, norm="none", activation="crelu")
    layer = units.build(model)[0]
    seen = []
    layer.activation.register_forward_hook(lambda m, i, out: seen.append(out))
    x = torch.randn(5, 3)
    model(x)
    pre = model.linears[0](x)
    assert seen[0].shape == (5, 4)
    both = model.acts[0](pre)
    assert torch.allclose(seen[0].abs(), both[:, :4] + both[:, 4:])


def test_crelu_mlp_is_not_packable_and_trains_through_the_engine():
    spec = load_config(None, ["model.activation=crelu"]).model
    assert not spec.packable and load_config(None, []).model.packable
    key, why = pack_key(load_config(None, ["model.activation=crelu"]))
    assert key is None and "cannot be packed" in why
    s = loop.setup(resolve(None, TINY + ["tasks.count=1", "model.activation=crelu", "method.name=redo",
                                         "method.every=2"]))
    rows = []
    loop.run([s], [rows.append])
    epochs = [r["train_loss"] for r in rows if r["event"] == "epoch"]
    end = next(r for r in rows if r["event"] == "task_end")
    assert epochs[-1] < epochs[0] and end["dormant_fraction"] == pytest.approx(0.0)  # no unit has both halves off


def test_cnn_spec_takes_crelu():
    cfg = load_config(None, ["model={name: cnn, channels: [4], activation: crelu}"])
    assert cfg.model.activation == "crelu"
