"""Fit target images to the pre-trained model's input shape: channels, then size, then standardise.

For target images x of shape (N, C, H, W) and a source input shape (C', H', W'):

1. channels: C = C' as is; 1 → C' by repeating the grey channel; 3 → 1 by the ITU-R BT.601
   luma average y = 0.299·R + 0.587·G + 0.114·B. Any other pair is an error.
2. size: (H, W) ≠ (H', W') is resized with bilinear ``F.interpolate`` (``align_corners=False``,
   ``antialias=True``, so shrinking averages instead of skipping pixels).
3. standardise (optional): every channel to mean 0, std 1 with the statistics of the converted
   target *training pool* (``stats`` from ``channel_stats``), as ``data.normalize`` does.

Conversion runs on raw pixel values ([0, 1]), before standardising, so the luma average and
the interpolation see pixel intensities rather than standardised scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plasticlab.registry import UserError

LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights of R, G, B in the grey value."""


def check_convertible(target_shape: tuple[int, ...], source_shape: tuple[int, ...], *, name: str = "target") -> None:
    """Raise UserError unless images of ``target_shape`` (C, H, W) can be fitted to ``source_shape``."""
    if len(target_shape) != 3 or len(source_shape) != 3:
        raise UserError(f"transfer: {name} images {target_shape} and source inputs {source_shape} must both be "
                        "(C, H, W) images")
    c, c_src = target_shape[0], source_shape[0]
    if c != c_src and not (c == 1 or (c == 3 and c_src == 1)):
        raise UserError(f"transfer: cannot convert {c}-channel {name} images to the source's {c_src} channels "
                        "(supported: equal counts, 1 → any by repeating, 3 → 1 by luma average)")


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) → (N, channels, H, W): repeat a grey channel, or luma-average RGB to grey."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    raise UserError(f"transfer: cannot convert {c} channels to {channels}")


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to (N, C, *size); identity when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def to_source_shape(x: torch.Tensor, source_shape: tuple[int, ...]) -> torch.Tensor:
    """Channels then size of images (N, C, H, W) converted to ``source_shape`` (C', H', W')."""
    return resize(convert_channels(x, source_shape[0]), source_shape[1:])


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (clamped at 1e-6) of images (N, C, H, W), each (1, C, 1, 1)."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return mean, std


def standardise(x: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    mean, std = stats
    return (x - mean) / std
