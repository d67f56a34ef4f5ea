"""The tiny-imagenet reader on a tiny distribution in the real layout (JPEGs, wnids.txt,
val_annotations.txt); fetch with the published md5, a checksum failure, missing and damaged files;
random labels on it from the CLI."""

import dataclasses
import hashlib

import numpy as np
import pytest

from plasticlab import registry
from plasticlab.data import read_arrays
from plasticlab.data.fetch import fetch
from plasticlab.registry import UserError
from tests.tasks.cli_run import run_cli

from .formats import tiny_imagenet_members, zip_bytes

WNIDS = ["n03", "n01", "n02"]  # unsorted in wnids.txt: classes follow the sorted order


def write(root, train: int = 4, val: int = 2):
    for name, data in tiny_imagenet_members(WNIDS, train, val).items():
        p = root / "tiny-imagenet" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_reads_images_labels_and_greyscale(tmp_path):
    write(tmp_path)
    arr = read_arrays("tiny-imagenet", tmp_path)
    assert arr.classes == 3 and arr.x_train.shape == (12, 3, 64, 64) and arr.x_train.dtype == np.uint8
    assert arr.x_test.shape == (6, 3, 64, 64)
    # the writer's class c is WNIDS[c]; the reader's class is its sorted position
    sorted_class = [sorted(WNIDS).index(w) for w in WNIDS]
    assert arr.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for k in range(12):
        c_read, i = int(arr.y_train[k]), k % 4
        c_written = WNIDS.index(sorted(WNIDS)[c_read])
        want = (77, 77, 77) if (c_written == 2 and i == 0) else (40 * c_written, 10 * i, 200)
        assert np.abs(arr.x_train[k].reshape(3, -1).astype(int) - np.array(want)[:, None]).max() <= 3, k
    assert sorted(arr.y_test.tolist()) == [0, 0, 1, 1, 2, 2]
    val_blue = arr.x_test[:, 2].mean(axis=(1, 2))
    assert np.all(np.abs(val_blue - 100) <= 3)
    first_val_class = sorted_class[0]  # val_0.JPEG belongs to WNIDS[0]
    assert arr.y_test[0] == first_val_class


def test_missing_files_named_with_the_fetch_command(tmp_path):
    with pytest.raises(UserError, match="missing tiny-imagenet-200/wnids.txt.* in .*fetch tiny-imagenet"):
        read_arrays("tiny-imagenet", tmp_path)
    write(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "tiny-imagenet" / "tiny-imagenet-200" / "train" / "n02")
    with pytest.raises(UserError, match="missing tiny-imagenet-200/train/n02/images in .*fetch tiny-imagenet"):
        read_arrays("tiny-imagenet", tmp_path)


def test_damaged_image_and_annotation_are_one_line_with_the_fix(tmp_path):
    write(tmp_path)
    base = tmp_path / "tiny-imagenet" / "tiny-imagenet-200"
    (base / "val" / "images" / "val_3.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"corrupt data file .*val_3.JPEG: cannot decode .*fetch tiny-imagenet --force"):
        read_arrays("tiny-imagenet", tmp_path)
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match="val_annotations.txt: line 1 does not name"):
        read_arrays("tiny-imagenet", tmp_path)


def served(tmp_path, monkeypatch, md5: str | None):
    """The tiny distribution zipped and served by file://, with ``md5`` as the published checksum
    (None: the zip's own)."""
    archive = tmp_path / "server" / "tiny-imagenet-200.zip"
    archive.parent.mkdir()
    archive.write_bytes(zip_bytes(tiny_imagenet_members(WNIDS, 2, 1)))
    spec = registry.DATASETS["tiny-imagenet"]
    remote = dataclasses.replace(spec.remote[0], url=archive.as_uri(),
                                 md5=md5 or hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.setitem(registry.DATASETS, "tiny-imagenet", dataclasses.replace(spec, remote=[remote]))


def test_fetch_unpacks_the_zip(tmp_path, monkeypatch):
    assert registry.DATASETS["tiny-imagenet"].remote[0].md5 == "90528d7ca1a48142e341f4ef8d21d0de"
    served(tmp_path, monkeypatch, None)
    folder = fetch("tiny-imagenet", str(tmp_path / "data"))
    assert not (folder / "tiny-imagenet-200.zip").exists()
    arr = read_arrays("tiny-imagenet", tmp_path / "data")
    assert arr.x_train.shape == (6, 3, 64, 64) and arr.y_test.tolist() == [2, 0, 1]  # val_0: n03, class 2


def test_checksum_failure_is_reported_and_nothing_is_unpacked(tmp_path, monkeypatch):
    served(tmp_path, monkeypatch, "90528d7ca1a48142e341f4ef8d21d0de")  # the real zip's md5: ours differs
    root = tmp_path / "data"
    with pytest.raises(UserError, match="could not download tiny-imagenet-200.zip: .*md5 [0-9a-f]{32} differs "
                                        "from the published 90528d7ca1a48142e341f4ef8d21d0de"):
        fetch("tiny-imagenet", str(root))
    assert not (root / "tiny-imagenet" / "tiny-imagenet-200").exists()
    assert (root / "tiny-imagenet" / "tiny-imagenet-200.zip.bad").is_file()


def test_random_labels_on_tiny_imagenet_from_the_cli(tmp_path):
    write(tmp_path / "data")
    ends = run_cli(tmp_path / "run", "data.name=tiny-imagenet", f"data.root={tmp_path / 'data'}",
                   "tasks.family=random-labels", "optim.batch_size=4")
    assert [e["task"] for e in ends] == [0, 1] and all(0 <= e["train_acc"] <= 1 for e in ends)
