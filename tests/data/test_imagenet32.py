"""The imagenet32 reader on tiny batches in the official format (pickled and .npz, both layouts);
fetch from a served zip without a published checksum; missing and damaged files named."""

import dataclasses
import pickle

import numpy as np
import pytest

from plasticlab import registry
from plasticlab.data import read_arrays
from plasticlab.data.fetch import fetch, verify
from plasticlab.data.imagenet32 import TRAIN
from plasticlab.registry import UserError

from .formats import imagenet32_batch, zip_bytes


def batches(n: int = 3) -> dict[str, dict]:
    out = {name: imagenet32_batch(i, n) for i, name in enumerate(TRAIN)}
    out["val_data"] = imagenet32_batch(99, 2, mean=False)
    return out


def write(folder, data: dict[str, dict], npz: bool = False) -> None:
    for name, d in data.items():
        sub = folder / ("Imagenet32_val" if name == "val_data" else "Imagenet32_train")
        sub.mkdir(parents=True, exist_ok=True)
        if npz:
            np.savez(sub.parent / f"{name}.npz", **{k: np.asarray(v) for k, v in d.items()})
        else:
            (sub / name).write_bytes(pickle.dumps(d, protocol=3))


def check(arr, data: dict[str, dict]) -> None:
    assert arr.classes == 1000 and arr.x_train.shape == (30, 3, 32, 32) and arr.x_test.shape == (2, 3, 32, 32)
    b1 = data["train_data_batch_1"]
    np.testing.assert_array_equal(arr.x_train[0, 0, 0], b1["data"][0, :32])  # red plane, first row
    np.testing.assert_array_equal(arr.x_train[0, 2, 31], b1["data"][0, -32:])  # blue plane, last row
    want = sum((data[n]["labels"] for n in TRAIN), [])
    assert arr.y_train.tolist() == [v - 1 for v in want]  # 1-based → 0-based
    assert arr.y_test.tolist() == [v - 1 for v in data["val_data"]["labels"]]


def test_reads_pickled_batches_in_the_zip_folders(tmp_path):
    data = batches()
    write(tmp_path / "imagenet32", data)
    check(read_arrays("imagenet32", tmp_path), data)


def test_reads_npz_batches(tmp_path):
    data = batches()
    write(tmp_path / "imagenet32", data, npz=True)
    check(read_arrays("imagenet32", tmp_path), data)


def test_missing_batch_named_with_the_fetch_command(tmp_path):
    write(tmp_path / "imagenet32", batches())
    (tmp_path / "imagenet32" / "Imagenet32_train" / "train_data_batch_7").unlink()
    msg = r"missing Imagenet32_train/train_data_batch_7 in .*imagenet32 .*fetch imagenet32"
    with pytest.raises(UserError, match=msg):
        read_arrays("imagenet32", tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d | {"labels": [0] + d["labels"][1:]}, "labels span 0..[0-9]+, expected 1..1000"),
    (lambda d: d | {"data": d["data"][:, :100]}, r"expected uint8 data of shape \(N, 3072\)"),
    (lambda d: {"data": d["data"]}, "expected a dict with keys"),
])
def test_damaged_batch_is_one_line_with_the_fix(tmp_path, damage, message):
    data = batches()
    data["val_data"] = damage(data["val_data"])
    write(tmp_path / "imagenet32", data)
    with pytest.raises(UserError, match=f"corrupt data file .*val_data: {message}.*fetch imagenet32 --force"):
        read_arrays("imagenet32", tmp_path)


def test_fetch_unpacks_served_zips_and_verify_says_no_checksum(tmp_path, monkeypatch):
    data = batches()
    server = tmp_path / "server"
    server.mkdir()
    for part, names in (("train", TRAIN), ("val", ["val_data"])):
        members = {f"Imagenet32_{part}/{n}": pickle.dumps(data[n], protocol=3) for n in names}
        (server / f"Imagenet32_{part}.zip").write_bytes(zip_bytes(members))
    spec = registry.DATASETS["imagenet32"]
    assert all(r.md5 is None and r.sha256 is None and r.extract for r in spec.remote)  # none published
    remote = [dataclasses.replace(r, url=(server / r.name).as_uri()) for r in spec.remote]
    monkeypatch.setitem(registry.DATASETS, "imagenet32", dataclasses.replace(spec, remote=remote))
    root = tmp_path / "data"
    folder = fetch("imagenet32", str(root))
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["Imagenet32_train",
                                                                                       "Imagenet32_val"]
    check(read_arrays("imagenet32", root), data)
    lines = verify("imagenet32", str(root))
    assert sum("no published checksum" in line for line in lines) == 11
    assert lines[-1] == "ok  imagenet32: read 30 train and 2 test examples of shape (3, 32, 32), 1000 classes"
