import pytest
import torch
import torch.nn.functional as F

from plasticlab.augment import AugmentConfig, augment
from plasticlab.registry import UserError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference(x, g, p, flip, mode="constant"):
    """Per-example loop with the same draws as ``augment`` (test oracle only)."""
    b, _, h, w = x.shape
    off = torch.randint(0, 2 * p + 1, (b, 2), generator=g)
    coin = torch.rand(b, generator=g) < 0.5
    xp = F.pad(x, (p, p, p, p), mode=mode) if p else x
    out = []
    for i in range(b):
        crop = xp[i, :, off[i, 0] : off[i, 0] + h, off[i, 1] : off[i, 1] + w]
        out.append(crop.flip(-1) if flip and coin[i] else crop)
    return torch.stack(out)


CASES = [(4, True, "constant"), (2, False, "reflect"), (3, True, "replicate")]


@pytest.mark.parametrize("p,flip,mode", CASES)
def test_matches_per_example_crop_and_flip(p, flip, mode):
    x = torch.randn(16, 3, 8, 10, generator=gen(1))
    got = augment(x, gen(5), crop_padding=p, flip=flip, padding_mode=mode)
    assert torch.equal(got, reference(x, gen(5), p, flip, mode))


def test_deterministic_under_seed_and_varies_with_it():
    x = torch.randn(32, 3, 32, 32, generator=gen(1))
    a, b, c = augment(x, gen(7)), augment(x, gen(7)), augment(x, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape


def test_padding_zero_no_flip_is_identity():
    x = torch.randn(8, 1, 28, 28, generator=gen(2))
    assert torch.equal(augment(x, gen(0), crop_padding=0, flip=False), x)


def test_flip_of_flip_is_identity_and_flips_about_half():
    x = torch.randn(256, 2, 5, 6, generator=gen(3))
    once = augment(x, gen(4), crop_padding=0, flip=True)
    flipped = (once != x).flatten(1).any(1)
    assert 90 < int(flipped.sum()) < 166  # Binomial(256, ½): mean 128, sd 8
    assert torch.equal(once[flipped], x[flipped].flip(-1))
    assert torch.equal(augment(once, gen(4), crop_padding=0, flip=True), x)


def test_crop_keeps_pixels_and_pads_with_zeros():
    x = torch.ones(64, 1, 6, 6)
    out = augment(x, gen(0), crop_padding=2, flip=False)
    # each crop of a padded all-ones image: a (6-|di|)×(6-|dj|) block of ones, the rest zeros
    g = gen(0)
    off = torch.randint(0, 5, (64, 2), generator=g) - 2
    expect = (6 - off[:, 0].abs()) * (6 - off[:, 1].abs())
    assert torch.equal(out.sum((1, 2, 3)).long(), expect)


def test_rejects_flat_input_and_negative_padding():
    with pytest.raises(UserError):
        augment(torch.zeros(4, 64), gen(0))
    with pytest.raises(UserError):
        AugmentConfig(crop_padding=-1).validate("augment")
