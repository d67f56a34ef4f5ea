"""Mean and 95% confidence interval over seeds.

For values x_1..x_n (non-finite values dropped first): mean x̄ = Σx_i / n, sample standard
deviation s = sqrt(Σ(x_i − x̄)² / (n − 1)), and the two-sided 95% interval
x̄ ± t_{0.975, n−1} · s / √n (Student's t with n − 1 degrees of freedom). With n = 1 there is
no interval (half-width None); with n = 0 the mean is None too.

Every plasticlab measure has a range (``measure_range``): accuracies, BLEU, exact match and
fractions lie in [0, 1]; losses, norms, ranks and sensitivities are ≥ 0. An interval is clipped to
its measure's range (``Estimate.low``/``high``): a t-interval of a few seeds near 0 would otherwise
reach below 0, a value the measure cannot take. The mean and the half-width are not changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UNIT_INTERVAL = ("_acc", "bleu2", "_exact", "_fraction", "_sparsity")
"""Name endings of measures in [0, 1] (accuracies, BLEU, exact match, shares of units or weights)."""
NON_NEGATIVE = ("_loss", "_norm", "rank", "sensitivity", "_distance")
"""Name endings of measures ≥ 0 (losses, norms, ranks, input sensitivity, distance from init);
``grad_*`` (mean |gradient|) too."""


def measure_range(name: str) -> tuple[float, float]:
    """(lowest, highest) value the measure ``name`` can take; (-inf, inf) for a name not known here."""
    if name.endswith(UNIT_INTERVAL):
        return 0.0, 1.0
    if name.endswith(NON_NEGATIVE) or name.startswith("grad_"):
        return 0.0, math.inf
    return -math.inf, math.inf


@dataclass(frozen=True)
class Estimate:
    mean: float | None
    half: float | None
    """Half-width of the 95% interval; None when n < 2."""
    n: int
    bounds: tuple[float, float] = (-math.inf, math.inf)
    """The measure's range (``measure_range``): ``low`` and ``high`` are clipped to it."""

    @property
    def low(self) -> float | None:
        return None if self.mean is None or self.half is None else max(self.bounds[0], self.mean - self.half)

    @property
    def high(self) -> float | None:
        return None if self.mean is None or self.half is None else min(self.bounds[1], self.mean + self.half)

    @property
    def clipped(self) -> bool:
        """True when the range cut the interval (``low``/``high`` differ from mean ∓ half)."""
        return self.half is not None and (self.low != self.mean - self.half or self.high != self.mean + self.half)


def t_quantile(p: float, dof: int) -> float:
    """Quantile p of Student's t with ``dof`` degrees of freedom."""
    from scipy.stats import t  # why: scipy comes with scikit-learn; imported late to keep import time low

    return float(t.ppf(p, dof))


def mean_ci(values: list[float | None], level: float = 0.95,
            bounds: tuple[float, float] = (-math.inf, math.inf)) -> Estimate:
    """Mean and the t-interval half-width t_{(1+level)/2, n−1} · s/√n of the finite values; the
    interval's ends are clipped to ``bounds`` (the measure's range, ``measure_range``)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Estimate(None, None, 0, bounds)
    mean = sum(xs) / n
    if n == 1:
        return Estimate(mean, None, 1, bounds)
    s = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Estimate(mean, t_quantile((1 + level) / 2, n - 1) * s / math.sqrt(n), n, bounds)


# --- robust aggregates: interquartile mean with a stratified-bootstrap interval (rliable) ---

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Robust:
    """Interquartile mean and its 95% percentile-bootstrap interval (clipped to the measure's range)."""

    iqm: float | None
    low: float | None
    high: float | None
    n: int


def iqm(values: list[float | None]) -> float | None:
    """Interquartile mean of the finite values: the mean of the middle 50% (scipy ``trim_mean(x, 0.25)``,
    which drops ⌊0.25·n⌋ values at each end). None when there is none."""
    xs = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    if not xs:
        return None
    cut = int(0.25 * len(xs))
    mid = xs[cut:len(xs) - cut]
    return sum(mid) / len(mid)


def iqm_ci(values: list[float | None], level: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf),
           resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Robust:
    """IQM over runs and the percentile interval of its bootstrap distribution: ``resamples`` times, the
    n runs are drawn with replacement (within this group: the stratified bootstrap of rliable, Agarwal et
    al. 2021, one stratum per group) and the IQM recomputed; the interval is the (1−level)/2 and
    (1+level)/2 quantiles, clipped to ``bounds``. A fixed ``seed`` makes it reproducible. n = 1: no interval."""
    import numpy as np

    xs = np.array([float(v) for v in values if v is not None and math.isfinite(v)])
    n = len(xs)
    point = iqm(list(xs))
    if n < 2:
        return Robust(point, None, None, n)
    rng = np.random.default_rng(seed)
    samples = np.sort(xs[rng.integers(0, n, size=(resamples, n))], axis=1)
    cut = int(0.25 * n)
    boot = samples[:, cut:n - cut].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Robust(point, max(bounds[0], float(lo)), min(bounds[1], float(hi)), n)
