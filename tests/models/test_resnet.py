import pytest
import torch

from plasticlab.config import from_dict
from plasticlab.models.resnet import ResNet18Spec
from plasticlab.registry import UserError


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("norm", ["batchnorm", "groupnorm"])
def test_parameter_count_cifar(norm):
    assert n_params(ResNet18Spec(norm=norm).build((3, 32, 32), 10)) == 11_173_962


def test_parameter_count_other_inputs_and_classes():
    # only the stem (9·C_in·64) and the head (512·n_out + n_out) depend on the task
    base = 11_173_962 - 9 * 3 * 64 - 5130
    assert n_params(ResNet18Spec().build((1, 28, 28), 100)) == base + 9 * 64 + 51_300


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (1, 8, 8)])
def test_shapes(shape):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = ResNet18Spec().build(shape, 10)
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 10)
    assert model.features(x).shape == (2, 512)


def test_structure_and_unit_layers():
    model = ResNet18Spec(width=8, norm="groupnorm", groups=4).build((3, 32, 32), 10)
    layers = model.unit_layers()
    assert [u.count for u in layers] == [8, 8, 16, 16, 32, 32, 64, 64]
    strides = [b.conv1.stride[0] for b in model.blocks]
    assert strides == [1, 1, 2, 1, 2, 1, 2, 1]
    assert [len(b.shortcut) for b in model.blocks] == [0, 0, 2, 0, 2, 0, 2, 0]
    assert model.conv1.stride == (1, 1) and model.conv1.bias is None
    for b, u in zip(model.blocks, layers, strict=True):
        assert u.in_weight.tensor is b.conv1.weight and u.out_weight.tensor is b.conv2.weight
        assert u.activation is b.act1


def test_width_and_groups_validated():
    with pytest.raises(UserError, match="does not divide"):
        from_dict({"model": {"name": "resnet18", "norm": "groupnorm", "width": 16}})
    cfg = from_dict({"model": {"name": "resnet18", "norm": "groupnorm", "width": 16, "groups": 8}})
    assert cfg.model.width == 16
