import pytest
import torch

from plasticlab.config import from_dict
from plasticlab.models.cnn import CNNSpec
from plasticlab.registry import MODELS, UserError

SHAPES = [(3, 32, 32), (1, 28, 28), (1, 8, 8)]


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norm", ["none", "batchnorm", "groupnorm", "layernorm"])
def test_shapes(shape, norm):
    torch.manual_seed(0)
    model = CNNSpec(norm=norm).build(shape, 7)
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 7)
    assert model.features(x).shape == (2, 128)


def test_parameter_count_default():
    # convs 3→32→64→128 (3×3, bias) + head 128→10
    expect = (9 * 3 * 32 + 32) + (9 * 32 * 64 + 64) + (9 * 64 * 128 + 128) + (128 * 10 + 10)
    assert expect == 94_538
    assert n_params(CNNSpec().build((3, 32, 32), 10)) == expect


def test_spatial_and_hidden():
    spec = CNNSpec(channels=[8, 16], spatial=2, hidden=[32], norm="batchnorm")
    model = spec.build((1, 28, 28), 5)
    assert model.linears[0].in_features == 16 * 4
    assert model.features(torch.zeros(3, 1, 28, 28)).shape == (3, 32)
    expect = (9 * 8 + 8 + 16) + (9 * 8 * 16 + 16 + 32) + (64 * 32 + 32 + 64) + (32 * 5 + 5)
    assert n_params(model) == expect
    layers = model.unit_layers()
    assert [(u.name, u.count) for u in layers] == [("conv0", 8), ("conv1", 16), ("hidden0", 32)]
    assert layers[1].out_weight.group == 4 and layers[1].out_weight.tensor is model.linears[0].weight


def test_no_pool_keeps_full_map_until_adaptive_pool():
    model = CNNSpec(channels=[4], pool="none").build((1, 8, 8), 3)
    acts = []
    model.acts[0].register_forward_hook(lambda m, i, o: acts.append(o.shape))
    model(torch.zeros(2, 1, 8, 8))
    assert acts == [(2, 4, 8, 8)]


def test_config_and_errors():
    cfg = from_dict({"model": {"name": "cnn", "channels": [16, 32], "norm": "groupnorm", "groups": 8}})
    assert isinstance(cfg.model, CNNSpec) and "cnn" in MODELS
    with pytest.raises(UserError, match="groups"):
        from_dict({"model": {"name": "cnn", "channels": [12], "norm": "groupnorm", "groups": 8}})
    with pytest.raises(UserError, match="channels"):
        from_dict({"model": {"name": "cnn", "channels": []}})
    with pytest.raises(UserError, match="image inputs"):
        CNNSpec().build((64,), 10)
