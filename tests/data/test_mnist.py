"""MNIST-layout loaders (mnist, fashion-mnist, kmnist) and load_dataset subsetting, on tiny files."""

import gzip

import numpy as np
import pytest
import torch

from plasticlab.data import load_dataset, read_arrays
from plasticlab.registry import UserError

from .formats import MNIST_FILES, idx_bytes, write_mnist


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
@pytest.mark.parametrize("gz", [True, False])
def test_reads_exact_arrays(tmp_path, name, gz):
    a = write_mnist(tmp_path / name, gz=gz)
    arr = read_arrays(name, tmp_path)
    assert arr.classes == 10
    assert arr.x_train.shape == (50, 1, 28, 28) and arr.x_train.dtype == np.uint8
    np.testing.assert_array_equal(arr.x_train[:, 0], a["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(arr.x_test[:, 0], a["t10k-images-idx3-ubyte"])
    assert arr.y_train.dtype == np.int64
    assert arr.y_train.tolist() == a["train-labels-idx1-ubyte"].tolist()
    assert arr.y_test.tolist() == a["t10k-labels-idx1-ubyte"].tolist()


def test_missing_files_message(tmp_path):
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError) as e:
        read_arrays("mnist", tmp_path)
    msg = str(e.value)
    assert "missing train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz in" in msg
    assert str(tmp_path / "mnist") in msg
    assert f"plasticlab data fetch mnist --root {tmp_path}" in msg
    assert "\n" not in msg


def test_truncated_file_raises(tmp_path):
    write_mnist(tmp_path / "mnist")
    p = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(UserError, match=f"corrupt data file {p}.*fetch mnist --force --root"):
        read_arrays("mnist", tmp_path)


def test_swapped_files_raise(tmp_path):
    """A labels file where the images belong is caught by the dimension check, not read."""
    write_mnist(tmp_path / "mnist")
    d = tmp_path / "mnist"
    (d / "train-images-idx3-ubyte.gz").write_bytes((d / "train-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(UserError, match=r"expected uint8 images of shape \(N, 28, 28\)"):
        read_arrays("mnist", tmp_path)


def test_label_out_of_range_raises(tmp_path):
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.array([0] * 29 + [10], np.uint8))))
    with pytest.raises(UserError, match="labels span 0..10, expected 0..9"):
        read_arrays("mnist", tmp_path)


def test_env_var_root(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("PLASTICLAB_DATA", str(tmp_path))
    assert len(read_arrays("mnist").y_train) == 50


def test_load_dataset_subset_balanced_and_deterministic(tmp_path):
    a = write_mnist(tmp_path / "mnist", per_class=(6, 4))
    kw = dict(root=str(tmp_path), samples_per_class=3, test_samples_per_class=2, normalize=False)
    d0 = load_dataset("mnist", seed=0, **kw)
    assert torch.bincount(d0.y_train).tolist() == [3] * 10
    assert torch.bincount(d0.y_test).tolist() == [2] * 10
    assert d0.x_train.shape == (30, 1, 28, 28) and d0.x_train.dtype == torch.float32
    # every chosen example is an original row with its own label, scaled to [0, 1]
    x_all = torch.as_tensor(a["train-images-idx3-ubyte"]).float() / 255.0
    y_all = torch.as_tensor(a["train-labels-idx1-ubyte"].astype(np.int64))
    rows = [int(torch.nonzero((x_all == x).flatten(1).all(1))[0]) for x in d0.x_train[:, 0]]
    assert torch.equal(y_all[rows], d0.y_train)
    assert rows == sorted(rows)  # file order kept
    d0b = load_dataset("mnist", seed=0, **kw)
    assert torch.equal(d0.x_train, d0b.x_train) and torch.equal(d0.y_test, d0b.y_test)
    d1 = load_dataset("mnist", seed=1, **kw)
    assert not torch.equal(d0.x_train, d1.x_train)


def test_load_dataset_normalises_with_train_stats(tmp_path):
    write_mnist(tmp_path / "mnist")
    d = load_dataset("mnist", root=str(tmp_path), normalize=True)
    assert abs(float(d.x_train.mean())) < 1e-5 and abs(float(d.x_train.std()) - 1) < 1e-4
    assert d.x_test.shape == (30, 1, 28, 28)


def test_too_few_test_examples_names_the_test_key(tmp_path):
    write_mnist(tmp_path / "mnist", per_class=(6, 4))
    with pytest.raises(UserError, match="data.test_samples_per_class=5 but class 0 has only 4"):
        load_dataset("mnist", root=str(tmp_path), test_samples_per_class=5)


def test_file_names_are_the_standard_ones():
    from plasticlab import registry

    spec = registry.DATASETS["mnist"]
    assert [r.name for r in spec.remote] == [f + ".gz" for f in MNIST_FILES]
    assert spec.remote[0].url == "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    assert spec.remote[0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
