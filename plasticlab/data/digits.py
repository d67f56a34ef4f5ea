"""scikit-learn's bundled 8×8 handwritten digits: the offline default (no download).

1,797 images of 10 classes, pixel values 0–16. Split deterministically: the last 30 images of
every class (in file order) form the test set, the rest (about 150 per class) the training set.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec
from plasticlab.registry import UserError

TEST_PER_CLASS = 30
IN_FILE = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
"""Images of each digit in the file (1,797)."""


def digits_file() -> Path:
    """scikit-learn's ``datasets/data/digits.csv.gz``, found without importing scikit-learn.

    # why: ``import sklearn.datasets`` takes ~1.7 s, paid by every run and every pool worker;
    the file is what ``sklearn.datasets.load_digits`` reads (64 pixel columns, then the label).
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("dataset 'digits' needs scikit-learn (pip install scikit-learn)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def read_digits(_folder: Path) -> ArrayData:
    data = np.loadtxt(digits_file(), delimiter=",")
    x = (data[:, :-1].reshape(-1, 8, 8).astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = data[:, -1].astype(np.int64)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        test[np.flatnonzero(y == c)[-TEST_PER_CLASS:]] = True
    return ArrayData(x[~test], y[~test], x[test], y[test], classes=10)


registry.register(registry.DATASETS, "digits")(
    DatasetSpec("digits", read_digits, description="scikit-learn 8×8 digits (bundled, no download)",
                embedded=True, counts=(tuple(n - TEST_PER_CLASS for n in IN_FILE), (TEST_PER_CLASS,) * 10))
)
