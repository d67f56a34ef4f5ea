import math

import pytest
import torch
from torch import nn

from plasticlab.models.layers import HalvingPool, check_groups, conv_slices, image_shape, linear_column_slices
from plasticlab.registry import UserError


def test_conv_slices_describe_pytorch_default_init():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    bound = 1 / math.sqrt(64 * 9)
    w, b = conv_slices(conv, 0)
    assert (w.dim, w.init, w.scale, b.is_weight) == (0, "uniform", bound, False)
    assert w.scale == pytest.approx(b.scale)
    # kaiming_uniform_(a=√5) is U(±1/√fan_in): the max is just below the bound, std = bound/√3
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.999 * bound
    assert conv.weight.std().item() == pytest.approx(w.init_std, rel=0.01)
    assert conv.bias.abs().max() <= bound
    (out,) = conv_slices(conv, 1)
    assert (out.dim, out.group, out.rows().shape) == (1, 1, (64, 128 * 9))
    fresh = w.draw(torch.Generator().manual_seed(0))
    assert fresh.abs().max() <= bound and fresh.std().item() == pytest.approx(w.init_std, rel=0.01)


def test_linear_column_slices_group_channels():
    lin = nn.Linear(3 * 4, 5)  # reads a (3, 2, 2) map flattened
    (s,) = linear_column_slices(lin, group=4)
    rows = s.rows()
    assert rows.shape == (3, 5 * 4)
    assert torch.equal(rows[1], lin.weight[:, 4:8].T.reshape(-1))
    mask = s.unit_mask(torch.tensor([False, True, False]))
    assert mask[:, 4:8].all() and mask.sum() == 5 * 4


def test_halving_pool_stops_at_one_pixel():
    pool = HalvingPool("max")
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(pool(x), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    one = torch.ones(1, 2, 1, 5)
    assert pool(one) is one
    assert HalvingPool("avg")(x).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_user_errors():
    with pytest.raises(UserError, match="image inputs"):
        image_shape("cnn", (64,))
    with pytest.raises(UserError, match="does not divide"):
        check_groups("model", "groupnorm", 32, [16, 32])
    check_groups("model", "batchnorm", 32, [16])
