"""``blurred``: task t shows the images under a Gaussian blur of width σ_t (critical periods).

σ_t = ``sigmas[t]``; tasks past the end of the list keep the last σ. The blur is a separable
convolution on the device with a normalised kernel of radius ⌈3σ⌉ and replicate padding;
σ = 0 is the identity. ``sigmas: [3.0, 0.0]`` = blurred pre-training, then clean images
(Achille et al.'s deficit setting). Labels are the base labels; the test set is blurred alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.registry import UserError
from plasticlab.tasks.base import ClassificationFamily, Task


def gaussian_kernel(sigma: float, device=None) -> torch.Tensor:
    """1-D Gaussian kernel of radius ⌈3σ⌉ summing to 1 (``[1.]`` for σ = 0)."""
    if sigma <= 0:
        return torch.ones(1, device=device)
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images (N, C, H, W) with a Gaussian of std ``sigma`` pixels, per channel."""
    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma, x.device).to(x.dtype)
    r = (k.numel() - 1) // 2
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def blend_blur(x: torch.Tensor, sigma_old: float, sigma_new: float, alpha: float) -> torch.Tensor:
    """(1−α)·blur(x, σ_old) + α·blur(x, σ_new): the input interpolation of two blur levels."""
    return (1 - alpha) * blur(x, sigma_old) + alpha * blur(x, sigma_new)


@registry.register(registry.FAMILIES, "blurred")
@dataclass
class Blurred(ClassificationFamily):
    """Config of the ``blurred`` family."""

    family: str = "blurred"
    count: int = field(default=2, metadata=bounds(ge=1))
    """Number of tasks."""
    sigmas: list[float] = field(default_factory=lambda: [3.0, 0.0], metadata=bounds(ge=0, min_length=1))
    """σ of task t (pixels); the last value repeats for later tasks."""
    kinds = ("abrupt", "input-interpolation", "task-sampling")

    def sigma(self, t: int) -> float:
        return self.sigmas[min(t, len(self.sigmas) - 1)]

    def make_task(self, base, seed: int, t: int) -> Task:
        s = self.sigma(t)
        if base.x_train.ndim != 4:
            raise UserError("config: tasks.family=blurred needs image data (N, C, H, W)")
        return Task(t, blur(base.x_train, s), base.y_train, blur(base.x_test, s), base.y_test)
