"""CIFAR loaders on tiny pickles in the official directory layout; unsafe or damaged pickles refused."""

import os
import pickle

import numpy as np
import pytest

from plasticlab.data import read_arrays
from plasticlab.registry import UserError

from .formats import cifar_batch, py2_cifar_pickle


def write_cifar10(root, n=4):
    d = root / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches = {f"data_batch_{i}": cifar_batch(i, n, 10, b"labels") for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(9, n, 10, b"labels")
    for name, b in batches.items():
        (d / name).write_bytes(pickle.dumps(b, protocol=2))
    return batches


def test_cifar10_exact(tmp_path):
    batches = write_cifar10(tmp_path)
    arr = read_arrays("cifar10", tmp_path)
    assert arr.classes == 10 and arr.x_train.shape == (20, 3, 32, 32) and arr.x_train.dtype == np.uint8
    b1 = batches["data_batch_1"]
    # channel-major rows: the first 1024 values are red, row by row
    np.testing.assert_array_equal(arr.x_train[0, 0, 0], b1[b"data"][0, :32])
    np.testing.assert_array_equal(arr.x_train[0, 1, 0], b1[b"data"][0, 1024:1056])
    np.testing.assert_array_equal(arr.x_train[4, 2, 31], batches["data_batch_2"][b"data"][0, -32:])
    want = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert arr.y_train.dtype == np.int64 and arr.y_train.tolist() == want
    assert arr.y_test.tolist() == batches["test_batch"][b"labels"]


def test_python2_pickles_like_the_official_files(tmp_path):
    """The official batches are Python 2 pickles naming numpy.core.multiarray._reconstruct."""
    batches = write_cifar10(tmp_path)
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    for name, b in batches.items():
        (d / name).write_bytes(py2_cifar_pickle(b[b"data"], b[b"labels"]))
    arr = read_arrays("cifar10", tmp_path)
    np.testing.assert_array_equal(arr.x_test.reshape(4, -1), batches["test_batch"][b"data"])
    assert arr.y_train[:4].tolist() == batches["data_batch_1"][b"labels"]


def test_cifar100_fine_labels(tmp_path):
    d = tmp_path / "cifar100" / "cifar-100-python"
    d.mkdir(parents=True)
    train = cifar_batch(1, 6, 100, b"fine_labels") | {b"coarse_labels": [0] * 6}
    test = cifar_batch(2, 3, 100, b"fine_labels") | {b"coarse_labels": [0] * 3}
    (d / "train").write_bytes(pickle.dumps(train, protocol=4))
    (d / "test").write_bytes(pickle.dumps(test, protocol=2))
    arr = read_arrays("cifar100", tmp_path)
    assert arr.classes == 100 and arr.y_train.tolist() == train[b"fine_labels"]
    np.testing.assert_array_equal(arr.x_test.reshape(3, -1), test[b"data"])


def test_missing_batch_named(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3").unlink()
    msg = "missing cifar-10-batches-py/data_batch_3 in .*cifar10 .*fetch cifar10 "
    with pytest.raises(UserError, match=msg):
        read_arrays("cifar10", tmp_path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(UserError, match=r"global \w+\.system is not allowed"):
        read_arrays("cifar10", tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda b: pickle.dumps(b, protocol=2)[:-100], "cannot unpickle"),
    (lambda b: pickle.dumps({b"data": b[b"data"]}), "expected a dict with keys"),
    (lambda b: pickle.dumps(b | {b"data": b[b"data"][:, :3000]}), r"shape \(N, 3072\)"),
    (lambda b: pickle.dumps(b | {b"labels": b[b"labels"][:-1]}), "expected 4 integer labels"),
    (lambda b: pickle.dumps(b | {b"labels": [10, 0, 0, 0]}), "labels span 0..10, expected 0..9"),
])
def test_damaged_batch_raises(tmp_path, damage, message):
    batches = write_cifar10(tmp_path)
    p = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_2"
    p.write_bytes(damage(batches["data_batch_2"]))
    with pytest.raises(UserError, match=message) as e:
        read_arrays("cifar10", tmp_path)
    assert str(p) in str(e.value) and "fetch cifar10 --force" in str(e.value)
