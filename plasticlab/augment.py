"""Batched on-device image augmentation: random crop with padding and horizontal flip.

For a batch x (B, C, H, W) and padding p, example b is padded by p on every side and the H×W
window at offset (i_b, j_b), i_b, j_b ~ U{0, …, 2p}, is kept (torchvision's
``RandomCrop(size, padding=p)``); with probability ½ the window is also mirrored left–right
(``RandomHorizontalFlip``). Crop and flip of the whole batch are one ``gather`` on the padded
batch; all draws come from the caller's ``torch.Generator`` (on x's device), so the result is a
pure function of the generator state. Padding fills with 0; on standardised data (the default
``data.normalize``) that is the channel mean, where torchvision pads raw images with black.

Usage::

    g = plasticlab.seeding.generator(seed, "augment", device=x.device)
    xb = augment(xb, g, crop_padding=4, flip=True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plasticlab.config import AugmentConfig  # noqa: F401  (re-exported)
from plasticlab.registry import UserError


def augment(x: torch.Tensor, generator: torch.Generator, crop_padding: int = 4, flip: bool = True,
            padding_mode: str = "constant") -> torch.Tensor:
    """Random crop with padding and random horizontal flip of every example, in one gather.

    Args:
        x: images (B, C, H, W).
        generator: source of all draws, on ``x.device``. Every call draws (B, 2) offsets and
            (B,) flip coins, whatever the options, so the stream position does not depend on them.
        crop_padding: p ≥ 0 (``reflect`` needs p < H and p < W).
        flip: mirror each example left–right with probability ½.
        padding_mode: ``constant`` (zeros), ``reflect`` or ``replicate``.

    Returns:
        Augmented images (B, C, H, W), a new tensor; no host sync.
    """
    if x.ndim != 4:
        raise UserError(f"augment: needs image batches (B, C, H, W), got shape {tuple(x.shape)} "
                        f"(turn augment off for flat inputs)")
    b, c, h, w = x.shape
    p = crop_padding
    off = torch.randint(0, 2 * p + 1, (b, 2), generator=generator, device=x.device)  # (B, 2): row, col
    coin = torch.rand(b, generator=generator, device=x.device) < 0.5  # (B,)
    xp = F.pad(x, (p, p, p, p), mode=padding_mode) if p > 0 else x  # (B, C, H+2p, W+2p)
    wp = w + 2 * p
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    cols = torch.where((coin & flip)[:, None], w - 1 - ar_w, ar_w) + off[:, 1:]  # (B, W)
    rows = ar_h + off[:, :1]  # (B, H)
    idx = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return xp.flatten(2).gather(2, idx).view(b, c, h, w)
