"""ImageNet 32×32 (Chrabaszcz, Loshchilov & Hutter 2017): ILSVRC-2012 downsampled to 32×32 (box resize).

1,000 classes, 1,281,167 training and 50,000 validation images (the validation set serves as the
test set). The official distribution (``Imagenet32_train.zip``, ``Imagenet32_val.zip``) holds
Python 3 pickles ``train_data_batch_1`` … ``train_data_batch_10`` and ``val_data``, each a dict
with ``'data'`` (N, 3072) uint8 (1024 red, 1024 green, 1024 blue values, row-major — CIFAR's
layout), ``'labels'`` (a list of ints 1…1000) and, in the training batches, ``'mean'``; the
``*_npz.zip`` variant holds the same arrays as ``.npz`` files. Either is read, in the dataset
directory or in the ``Imagenet32_train/``, ``Imagenet32_val/`` (or ``*_npz/``) folders the zips
create. Labels become 0…999.

No checksum is published for these files: ``plasticlab data fetch imagenet32`` downloads without
one (``verify`` says so and checks by reading every batch). image-net.org may ask for an account
login; then download the two zips by hand, unpack them into the dataset directory and run
``plasticlab data verify imagenet32``. Reading needs ~8 GB of host memory (3.9 GB of images,
concatenated); ``data.samples_per_class`` then keeps only the subset on the device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec, RemoteFile, fetch_hint, find_file
from plasticlab.data.cifar import load_batch

URL = "https://image-net.org/data/downsample/"
TRAIN = [f"train_data_batch_{i}" for i in range(1, 11)]
CLASSES = 1000


def alternatives(stem: str, sub: str) -> tuple[str, ...]:
    """Where one batch may be: in the zip's folder or the dataset directory, pickled or ``.npz``."""
    return f"{sub}/{stem}", stem, f"{sub}_npz/{stem}.npz", f"{stem}.npz"


REQUIRED: list[str | tuple[str, ...]] = ([alternatives(f, "Imagenet32_train") for f in TRAIN]
                                         + [alternatives("val_data", "Imagenet32_val")])


def read_imagenet32(folder: Path) -> ArrayData:
    """Concatenate the ten training batches; the validation batch is the test set."""
    fix = fetch_hint("imagenet32", folder.parent, force=True)
    parts = [load_batch(find_file(folder, item), b"labels", CLASSES, fix, first_label=1) for item in REQUIRED]
    x_tr, y_tr = (np.concatenate(a) for a in zip(*parts[:-1], strict=True))
    return ArrayData(x_tr, y_tr, *parts[-1], classes=CLASSES)


registry.register(registry.DATASETS, "imagenet32")(DatasetSpec(
    "imagenet32", read_imagenet32, required=REQUIRED,
    remote=[RemoteFile(f"Imagenet32_{part}.zip", f"{URL}Imagenet32_{part}.zip", extract=True)
            for part in ("train", "val")],
    description="ImageNet 32×32, 1000 classes, 1.28M/50k (Chrabaszcz et al. 2017; no published checksum)",
))
