"""Mean and 95% confidence interval over seeds.

For values x_1..x_n (non-finite values dropped first): mean x̄ = Σx_i / n, sample standard
deviation s = sqrt(Σ(x_i − x̄)² / (n − 1)), and the two-sided 95% interval
x̄ ± t_{0.975, n−1} · s / √n (Student's t with n − 1 degrees of freedom). With n = 1 there is
no interval (half-width None); with n = 0 the mean is None too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    mean: float | None
    half: float | None
    """Half-width of the 95% interval; None when n < 2."""
    n: int

    @property
    def low(self) -> float | None:
        return None if self.mean is None or self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.mean is None or self.half is None else self.mean + self.half


def t_quantile(p: float, dof: int) -> float:
    """Quantile p of Student's t with ``dof`` degrees of freedom."""
    from scipy.stats import t  # why: scipy comes with scikit-learn; imported late to keep import time low

    return float(t.ppf(p, dof))


def mean_ci(values: list[float | None], level: float = 0.95) -> Estimate:
    """Mean and the t-interval half-width t_{(1+level)/2, n−1} · s/√n of the finite values."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Estimate(None, None, 0)
    mean = sum(xs) / n
    if n == 1:
        return Estimate(mean, None, 1)
    s = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Estimate(mean, t_quantile((1 + level) / 2, n - 1) * s / math.sqrt(n), n)
