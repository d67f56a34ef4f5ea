"""Channel and size conversion of target images to the source's input shape."""

import pytest
import torch

from plasticlab.registry import UserError
from plasticlab.transfer.convert import (
    channel_stats,
    check_convertible,
    convert_channels,
    resize,
    standardise,
    to_source_shape,
)


def test_grey_to_rgb_repeats_the_channel():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    y = convert_channels(x, 3)
    assert y.shape == (2, 3, 3, 3)
    for c in range(3):
        assert torch.equal(y[:, c], x[:, 0])


def test_rgb_to_grey_is_the_bt601_luma():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0], x[0, 1], x[0, 2] = 1.0, 0.5, 0.25  # R, G, B
    y = convert_channels(x, 1)
    assert y.shape == (1, 1, 2, 2)
    assert torch.allclose(y, torch.full((1, 1, 2, 2), 0.299 + 0.5 * 0.587 + 0.25 * 0.114))


def test_resize_is_identity_at_the_same_size_and_keeps_constants():
    x = torch.randn(2, 1, 8, 8)
    assert resize(x, (8, 8)) is x
    c = torch.full((1, 3, 28, 28), 0.7)
    assert torch.allclose(resize(c, (32, 32)), torch.full((1, 3, 32, 32), 0.7))
    assert torch.allclose(resize(c, (8, 8)), torch.full((1, 3, 8, 8), 0.7))


def test_shrinking_averages_instead_of_skipping_pixels():
    # vertical lines on every 4th column, shrunk 4×: the interior columns get the lines' share, 1/4;
    # bilinear without antialiasing samples between the lines and gives 0
    x = torch.zeros(1, 1, 16, 16)
    x[..., ::4] = 1.0
    assert torch.allclose(resize(x, (4, 4))[..., 1:3], torch.full((1, 1, 4, 2), 0.25), atol=1e-6)


def test_to_source_shape_converts_channels_then_size():
    rgb = torch.rand(5, 3, 32, 32)
    assert to_source_shape(rgb, (1, 28, 28)).shape == (5, 1, 28, 28)
    grey = torch.rand(5, 1, 28, 28)
    out = to_source_shape(grey, (3, 32, 32))
    assert out.shape == (5, 3, 32, 32)
    assert torch.equal(out[:, 0], out[:, 2])


def test_standardise_gives_zero_mean_unit_std_per_channel():
    x = torch.randn(64, 3, 4, 4) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1) + 3.0
    y = standardise(x, channel_stats(x))
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("target,source", [((2, 8, 8), (3, 8, 8)), ((4, 8, 8), (1, 8, 8)), ((3, 8, 8), (2, 8, 8)),
                                           ((64,), (1, 8, 8))])
def test_impossible_conversions_are_user_errors(target, source):
    with pytest.raises(UserError, match="transfer:"):
        check_convertible(target, source)


def test_supported_conversions_pass_the_check():
    for target, source in [((1, 8, 8), (3, 32, 32)), ((3, 32, 32), (1, 28, 28)), ((3, 8, 8), (3, 16, 16))]:
        check_convertible(target, source)
