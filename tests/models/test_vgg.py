import pytest
import torch

from plasticlab.config import from_dict
from plasticlab.models.vgg import STAGES, VGGSpec
from plasticlab.registry import UserError


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def cifar_vgg_count(depth: int, batchnorm: bool, n_out: int = 10, c_in: int = 3) -> int:
    """Hand count of the CIFAR VGG: 3×3 convs with bias, [BN gain+bias], Linear 512→n_out."""
    total, width = 0, c_in
    for c in (w for stage in STAGES[depth] for w in stage):
        total += 9 * width * c + c + (2 * c if batchnorm else 0)
        width = c
    return total + 512 * n_out + n_out


@pytest.mark.parametrize("depth,batchnorm,expect", [
    (11, True, 9_231_114), (16, True, 14_728_266), (11, False, 9_225_610), (16, False, 14_719_818),
    (13, True, 9_416_010), (19, True, 20_040_522),
])
def test_parameter_counts_match_cifar_definition(depth, batchnorm, expect):
    assert cifar_vgg_count(depth, batchnorm) == expect
    model = VGGSpec(depth=depth, batchnorm=batchnorm).build((3, 32, 32), 10)
    assert n_params(model) == expect
    # the depth counts ImageNet VGG's three FC layers, so there are depth − 3 convs (= unit layers)
    assert len(model.unit_layers()) == depth - 3
    assert len(model.convs) == depth - 3


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (1, 8, 8)])
def test_shapes(shape):
    torch.manual_seed(0)
    model = VGGSpec(depth=11).build(shape, 10)
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 10)
    assert model.features(x).shape == (2, 512)


def test_pools_on_32x32_leave_one_pixel():
    model = VGGSpec(depth=11, batchnorm=False).build((3, 32, 32), 10)
    sizes = []
    for act in model.acts:
        act.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    model(torch.zeros(1, 3, 32, 32))
    assert sizes == [32, 16, 8, 8, 4, 4, 2, 2]


def test_depth_is_validated():
    assert from_dict({"model": {"name": "vgg", "depth": 11}}).model.depth == 11
    with pytest.raises(UserError, match="depth"):
        from_dict({"model": {"name": "vgg", "depth": 12}})
