"""EMNIST loaders: transposed storage fixed, letters labels shifted, all three file layouts."""

import gzip
import zipfile

import numpy as np
import pytest

from plasticlab.data import read_arrays
from plasticlab.data.fetch import list_rows
from plasticlab.registry import UserError

from .formats import idx_bytes, toy_split

PARTS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "test-images-idx3-ubyte", "test-labels-idx1-ubyte")


def emnist_files(split: str, classes: int, offset: int) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """Gzipped IDX bytes by file name (images stored transposed, as NIST does) and the upright arrays."""
    x_tr, y_tr = toy_split(2, 2, classes, offset)
    x_te, y_te = toy_split(3, 1, classes, offset)
    upright = dict(zip(PARTS, (x_tr, y_tr, x_te, y_te), strict=True))
    stored = {p: (a.transpose(0, 2, 1) if a.ndim == 3 else a) for p, a in upright.items()}
    return {f"emnist-{split}-{p}.gz": gzip.compress(idx_bytes(a)) for p, a in stored.items()}, upright


@pytest.mark.parametrize("layout", ["flat", "gzip-folder", "zip"])
def test_letters_upright_and_zero_based(tmp_path, layout):
    files, upright = emnist_files("letters", 26, 1)
    d = tmp_path / "emnist"
    (d / "gzip").mkdir(parents=True)
    if layout == "zip":
        with zipfile.ZipFile(d / "gzip.zip", "w") as zf:
            for name, data in files.items():
                zf.writestr(f"gzip/{name}", data)
    else:
        for name, data in files.items():
            (d / ("gzip" if layout == "gzip-folder" else "") / name).write_bytes(data)
    arr = read_arrays("emnist-letters", tmp_path)
    assert arr.classes == 26 and arr.x_train.shape == (52, 1, 28, 28)
    np.testing.assert_array_equal(arr.x_train[:, 0], upright["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(arr.x_test[:, 0], upright["test-images-idx3-ubyte"])
    assert arr.y_train.tolist() == (upright["train-labels-idx1-ubyte"].astype(int) - 1).tolist()
    assert sorted(set(arr.y_test.tolist())) == list(range(26))


def test_transpose_on_a_known_image(tmp_path):
    """A stored image whose only lit pixel is at (row 2, col 5) comes out lit at (row 5, col 2)."""
    stored = np.zeros((10, 28, 28), np.uint8)
    stored[:, 2, 5] = 255
    labels = np.arange(10, dtype=np.uint8)
    d = tmp_path / "emnist"
    d.mkdir()
    for p, a in zip(PARTS, (stored, labels, stored, labels), strict=True):
        (d / f"emnist-digits-{p}").write_bytes(idx_bytes(a))  # un-gzipped names work too
    arr = read_arrays("emnist-digits", tmp_path)
    assert arr.x_train[0, 0, 5, 2] == 255 and arr.x_train[0, 0, 2, 5] == 0
    assert arr.y_train.tolist() == list(range(10)) and arr.classes == 10


def test_balanced_has_47_classes(tmp_path):
    files, upright = emnist_files("balanced", 47, 0)
    (tmp_path / "emnist").mkdir()
    for name, data in files.items():
        (tmp_path / "emnist" / name).write_bytes(data)
    arr = read_arrays("emnist-balanced", tmp_path)
    assert arr.classes == 47 and arr.y_train.tolist() == upright["train-labels-idx1-ubyte"].tolist()


def test_splits_share_one_directory(tmp_path):
    files, _ = emnist_files("digits", 10, 0)
    (tmp_path / "emnist").mkdir()
    for name, data in files.items():
        (tmp_path / "emnist" / name).write_bytes(data)
    status = {r["name"]: (r["status"], r["path"]) for r in list_rows(str(tmp_path))}
    assert status["emnist-digits"] == ("present", str(tmp_path / "emnist"))
    assert status["emnist-letters"] == ("missing", str(tmp_path / "emnist"))


def test_zip_without_the_member_raises(tmp_path):
    (tmp_path / "emnist").mkdir()
    with zipfile.ZipFile(tmp_path / "emnist" / "gzip.zip", "w") as zf:
        zf.writestr("gzip/something-else.gz", b"")
    with pytest.raises(UserError, match="has no member gzip/emnist-letters-train-images-idx3-ubyte.gz"):
        read_arrays("emnist-letters", tmp_path)


def test_corrupt_zip_raises(tmp_path):
    (tmp_path / "emnist").mkdir()
    (tmp_path / "emnist" / "gzip.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="corrupt archive .*gzip.zip.*fetch emnist-letters --force"):
        read_arrays("emnist-letters", tmp_path)


def test_letters_label_zero_is_corrupt(tmp_path):
    files, _ = emnist_files("letters", 26, 1)
    files["emnist-letters-test-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.zeros(26, np.uint8)))
    (tmp_path / "emnist").mkdir()
    for name, data in files.items():
        (tmp_path / "emnist" / name).write_bytes(data)
    with pytest.raises(UserError, match="labels span 0..0, expected 1..26"):
        read_arrays("emnist-letters", tmp_path)
