"""MNIST, Fashion-MNIST and Kuzushiji-MNIST: 28×28 grey images of 10 classes in IDX files.

Each dataset directory holds the four standard files (gzip-compressed or not)::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz  (60,000 examples)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz   (10,000 examples)

Checksums are the md5s published with the datasets (also listed by torchvision).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec, RemoteFile, fetch_hint, find_file
from plasticlab.data.idx import decode_idx, images_and_labels

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
REQUIRED: list[str | tuple[str, ...]] = [(f"{f}.gz", f) for f in FILES]

SOURCES = {
    "mnist": (
        ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        ["f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"],
        "MNIST handwritten digits, 28×28, 10 classes, 60k/10k (LeCun et al. 1998)",
        ((5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
         (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)),
    ),
    "fashion-mnist": (
        ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        ["8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"],
        "Fashion-MNIST clothing images, 28×28, 10 classes, 60k/10k (Xiao et al. 2017)",
        ((6000,) * 10, (1000,) * 10),
    ),
    "kmnist": (
        ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
        ["bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
         "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"],
        "Kuzushiji-MNIST cursive Japanese, 28×28, 10 classes, 60k/10k (Clanuwat et al. 2018)",
        ((6000,) * 10, (1000,) * 10),
    ),
}


def read_idx_dataset(folder: Path, name: str) -> ArrayData:
    """Read the four IDX files of an MNIST-layout dataset from ``folder``."""
    fix = fetch_hint(name, folder.parent, force=True)
    paths = [find_file(folder, item) for item in REQUIRED]
    arrays = [decode_idx(p.read_bytes(), str(p), fix) for p in paths]
    x_tr, y_tr = images_and_labels(arrays[0], arrays[1], (str(paths[0]), str(paths[1])), fix, classes=10)
    x_te, y_te = images_and_labels(arrays[2], arrays[3], (str(paths[2]), str(paths[3])), fix, classes=10)
    return ArrayData(x_tr, y_tr, x_te, y_te, classes=10)


for _name, (_urls, _md5s, _desc, _counts) in SOURCES.items():
    registry.register(registry.DATASETS, _name)(DatasetSpec(
        _name,
        partial(read_idx_dataset, name=_name),
        required=list(REQUIRED),
        remote=[RemoteFile(f"{f}.gz", _urls[0] + f"{f}.gz", md5=md5,
                           mirrors=tuple(u + f"{f}.gz" for u in _urls[1:]))
                for f, md5 in zip(FILES, _md5s, strict=True)],
        description=_desc,
        counts=_counts,
    ))
