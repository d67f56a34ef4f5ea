"""The embedded digits reader equals scikit-learn's ``load_digits`` without importing scikit-learn."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from plasticlab.data.digits import TEST_PER_CLASS, read_digits

ROOT = Path(__file__).resolve().parents[2]


def test_same_images_and_labels_as_sklearn():
    from sklearn.datasets import load_digits

    d, a = load_digits(), read_digits(None)
    x, y = (d.images.astype(np.float32) / 16.0)[:, None], d.target.astype(np.int64)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        test[np.flatnonzero(y == c)[-TEST_PER_CLASS:]] = True
    assert np.array_equal(a.x_train, x[~test]) and np.array_equal(a.y_train, y[~test])
    assert np.array_equal(a.x_test, x[test]) and np.array_equal(a.y_test, y[test])
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64


def test_reading_digits_does_not_import_sklearn():
    code = ("import sys\nfrom plasticlab.data.digits import read_digits\nread_digits(None)\n"
            "assert 'sklearn' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
