"""MNIST-1D (Greydanus 2020): procedurally generated 1-D digits, built in-process (no download).

Ten hand-made 12-point templates, one per digit, are turned into 40-point signals by the
procedure of the ``mnist1d`` package (``mnist1d/data.py::make_dataset`` and
``mnist1d/transform.py::transform``, default arguments). Per example, with u ~ U[0, 1):

1. pad: append p = 36 + ⌊25·u⌋ zeros to the template (+1e-8, so the template is never exactly 0);
2. dilate: linearly resample the 12 + p points onto 72 (= 12 + 60) evenly spaced points;
3. scale by 1 + 0.4·(u − ½);
4. translate: roll right by k ∈ {0, …, 47} (uniform);
5. correlated noise: the points that are exactly 0 (the padding) become 0.25·N(0, 1) noise
   smoothed by a Gaussian of σ = 2 points (scipy's ``gaussian_filter``: radius 8, mirror edges);
6. i.i.d. noise: add 0.02·N(0, 1) everywhere;
7. shear: subtract c·linspace(−½, ½, 72) with c = 0.75·(u − ½);
8. subsample: linearly resample the 72 points onto 40.

500 examples per class (5,000) are generated class by class, shuffled, standardised with the
mean and standard deviation of all 5,000 values, and split 4,000 train / 1,000 test — the package's
defaults (``num_samples=5000, train_split=0.8, seed=42``), so ``mnist1d`` is the standard dataset
whatever the run's seed (which, as for any dataset, only picks ``data.samples_per_class`` subsets).

Same random numbers as the package: the draws come from ``numpy.random.RandomState(42)`` in the
package's order (per example: pad, scale, translate, correlated noise ×72, i.i.d. noise ×72, shear;
then the shuffle), so the examples equal the package's ``make_dataset()`` up to floating-point
rounding (the resampling and smoothing are computed vectorised over all examples instead of by
scipy per example; differences are ~1e-15 before standardisation). Departure: only the draws run
in a per-example Python loop (≈5,000 × 6 calls, milliseconds); the arithmetic is vectorised.

Shape: each example is a one-channel 1×40 image (1, 1, 40), so ``mlp`` (flattens), every image
family (``random-labels``, ``permuted-pixels``, ``label-permuted``, ``class-pairs``, and
``blurred``, which then blurs along the signal) and per-channel normalisation (one channel: the
package's global standardisation) apply; the conv models run too (their 2×2 pools are skipped at
height 1).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec

TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])
"""The ten digit templates of Greydanus 2020 (12 points each), before whitening."""
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
CORR_NOISE_SIGMA = 2.0
IID_NOISE_SCALE = 0.02
SHEAR_SCALE = 0.75
LENGTH = 40
EPS = 1e-8
NUM_SAMPLES, TRAIN_SPLIT, SEED = 5000, 0.8, 42
DTYPE = np.float32


def templates() -> np.ndarray:
    """(10, 12) templates: whitened per digit, shifted to start (and end) at 0, divided by 6."""
    x = TEMPLATES - TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def linspace01(n: np.ndarray | int) -> np.ndarray:
    """Rows of ``np.linspace(0, 1, n)`` for each n, right-padded with 1.0 to max(n) columns."""
    n = np.atleast_1d(np.asarray(n))
    k = np.arange(n.max())[None, :]
    grid = k * (1.0 / (n[:, None] - 1))  # numpy's linspace: k·step + start, the last point set to stop
    return np.where(k >= n[:, None] - 1, 1.0, grid)


def resample(y: np.ndarray, n_src: np.ndarray | int, n_out: int) -> np.ndarray:
    """Linear interpolation of each row's first ``n_src`` values (on linspace(0, 1, n_src)) at
    linspace(0, 1, n_out) — scipy ``interp1d(kind='linear')``, vectorised over rows."""
    rows = y.shape[0]
    n_src = np.broadcast_to(np.asarray(n_src), (rows,))
    x = linspace01(n_src)  # (rows, max n_src)
    x_new = linspace01(n_out)[0]
    hi = np.empty((rows, n_out), dtype=np.int64)
    for n in np.unique(n_src):  # ≤ 25 distinct lengths: one searchsorted per length
        sel = n_src == n
        hi[sel] = np.clip(np.searchsorted(x[np.flatnonzero(sel)[0], :n], x_new), 1, n - 1)
    lo = hi - 1
    x_lo, x_hi = np.take_along_axis(x, lo, 1), np.take_along_axis(x, hi, 1)
    y_lo, y_hi = np.take_along_axis(y, lo, 1), np.take_along_axis(y, hi, 1)
    return (y_hi - y_lo) / (x_hi - x_lo) * (x_new[None, :] - x_lo) + y_lo


def gaussian_smooth(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy ``gaussian_filter1d(x, sigma)`` along the last axis (mode ``reflect``), for every row."""
    r = int(truncate * sigma + 0.5)
    t = np.arange(-r, r + 1)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    w = w / w.sum()
    padded = np.pad(x, [(0, 0), (r, r)], mode="symmetric")  # scipy's "reflect": d c b a | a b c d
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1, axis=1)
    return windows @ w


def draws(n: int, seed: int) -> dict[str, np.ndarray]:
    """The package's random numbers, in its order, from ``RandomState(seed)`` (one loop, no maths)."""
    rs = np.random.RandomState(seed)
    length = PADDING[1] + TEMPLATES.shape[1]
    out = {k: np.empty(n) for k in ("pad", "scale", "shear")}
    out["shift"] = np.empty(n, dtype=np.int64)
    out["corr"], out["iid"] = np.empty((n, length)), np.empty((n, length))
    for i in range(n):
        out["pad"][i], out["scale"][i], out["shift"][i] = rs.rand(), rs.rand(), rs.choice(MAX_TRANSLATION)
        out["corr"][i], out["iid"][i], out["shear"][i] = rs.randn(length), rs.randn(length), rs.rand()
    out["order"] = rs.permutation(n)
    return out


def generate(num_samples: int = NUM_SAMPLES, seed: int = SEED, train_split: float = TRAIN_SPLIT) -> ArrayData:
    """MNIST-1D as (N, 1, 1, 40) float32 signals; the defaults give the standard 4,000/1,000 split."""
    tmpl = templates()
    classes, tlen = tmpl.shape
    per_class = num_samples // classes
    n = per_class * classes
    labels = np.repeat(np.arange(classes), per_class)
    r = draws(n, seed)
    length = tlen + PADDING[1]
    pad = PADDING[0] + (r["pad"] * (PADDING[1] - PADDING[0] + 1)).astype(np.int64)
    src = np.zeros((n, length))
    src[:, :tlen] = tmpl[labels] + EPS
    x = resample(src, tlen + pad, length)
    x = x * (1 + SCALE_COEFF * (r["scale"] - 0.5))[:, None]
    x = np.take_along_axis(x, (np.arange(length)[None, :] - r["shift"][:, None]) % length, 1)
    corr = gaussian_smooth(CORR_NOISE_SCALE * r["corr"], CORR_NOISE_SIGMA)
    mask = x != 0
    x = mask * x + (1 - mask) * corr
    x = x + IID_NOISE_SCALE * r["iid"]
    x = x - (SHEAR_SCALE * (r["shear"] - 0.5))[:, None] * np.linspace(-0.5, 0.5, length)[None, :]
    x = resample(x, length, LENGTH)
    x, y = x[r["order"]], labels[r["order"]]
    x = (x - x.mean()) / x.std()
    split = int(n * train_split)
    x = x.astype(DTYPE)[:, None, None, :]
    return ArrayData(x[:split], y[:split], x[split:], y[split:], classes=classes)


@cache
def standard() -> ArrayData:
    """The standard dataset, generated once per process (0.4 s). # why: read by every run of a pack/sweep worker."""
    return generate()


def read_mnist1d(_folder: Path) -> ArrayData:
    return standard()


registry.register(registry.DATASETS, "mnist1d")(DatasetSpec(
    "mnist1d", read_mnist1d, embedded=True,
    description="MNIST-1D: 1-D digits, 40 points, 10 classes, 4k/1k, generated in-process (Greydanus 2020)",
))
