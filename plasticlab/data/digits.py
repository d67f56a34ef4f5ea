"""scikit-learn's bundled 8×8 handwritten digits: the offline default (no download).

1,797 images of 10 classes, pixel values 0–16. Split deterministically: the last 30 images of
every class (in file order) form the test set, the rest (about 150 per class) the training set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec

TEST_PER_CLASS = 30


def read_digits(_folder: Path) -> ArrayData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = d.target.astype(np.int64)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        test[np.flatnonzero(y == c)[-TEST_PER_CLASS:]] = True
    return ArrayData(x[~test], y[~test], x[test], y[test], classes=10)


registry.register(registry.DATASETS, "digits")(
    DatasetSpec("digits", read_digits, description="scikit-learn 8×8 digits (bundled, no download)",
                embedded=True)
)
