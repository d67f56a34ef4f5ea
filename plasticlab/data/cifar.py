"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 32×32 colour images, from the "python version" tarballs.

Directory layout after ``plasticlab data fetch`` (the tarball unpacked, then deleted)::

    cifar10/cifar-10-batches-py/{data_batch_1 … data_batch_5, test_batch}   50,000/10,000, 10 classes
    cifar100/cifar-100-python/{train, test}                                  50,000/10,000, 100 fine classes

Each file is a pickle of a dict with ``b"data"`` (N, 3072) uint8 (1024 red, 1024 green, 1024 blue
values, row-major) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100). Pickles can run
code, so they are read with an unpickler that only builds numpy arrays and builtin containers.
"""

from __future__ import annotations

import codecs
import pickle
from functools import partial
from pathlib import Path

import numpy as np

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec, RemoteFile, fetch_hint
from plasticlab.registry import UserError

_RECONSTRUCT = np.ndarray(0).__reduce__()[0]  # numpy's array unpickling function, in any numpy version
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
}


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals needed for numpy arrays (no code execution)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset file")
        return ALLOWED[(module, name)]


def load_batch(path: Path, label_key: bytes, classes: int, fix: str,
               first_label: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-layout batch: images (N, 3, 32, 32) uint8 and labels (N,) int64 in [0, classes).

    Also reads the downsampled-ImageNet batches (``imagenet32``): Python 3 pickles with str keys, or
    ``.npz`` archives of the same arrays, and labels counted from ``first_label`` (1 there).
    """

    def bad(why: str) -> UserError:
        return UserError(f"corrupt data file {path}: {why} (run `{fix}`)")

    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        else:
            with open(path, "rb") as f:
                d = ArrayUnpickler(f, encoding="bytes").load()
    # why: a damaged pickle can fail with almost any exception type (EOFError, KeyError, ValueError, ...)
    except Exception as e:
        raise bad(f"cannot unpickle ({type(e).__name__}: {e})") from None
    if isinstance(d, dict):
        d = {k.encode() if isinstance(k, str) else k: v for k, v in d.items()}
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        raise bad(f"expected a dict with keys b'data' and {label_key!r}")
    x, y = np.asarray(d[b"data"]), np.asarray(d[label_key])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise bad(f"expected uint8 data of shape (N, 3072), got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise bad(f"expected {len(x)} integer labels, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < first_label or y.max() >= first_label + classes):
        raise bad(f"labels span {y.min()}..{y.max()}, expected {first_label}..{first_label + classes - 1}")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64) - first_label


def read_cifar(folder: Path, name: str, sub: str, train: list[str], test: list[str], label_key: bytes,
               classes: int) -> ArrayData:
    """Concatenate the train and test pickles under ``folder / sub``."""
    fix = fetch_hint(name, folder.parent, force=True)
    parts = [[load_batch(folder / sub / f, label_key, classes, fix) for f in files]
             for files in (train, test)]
    x_tr, y_tr = (np.concatenate(a) for a in zip(*parts[0], strict=True))
    x_te, y_te = (np.concatenate(a) for a in zip(*parts[1], strict=True))
    return ArrayData(x_tr, y_tr, x_te, y_te, classes=classes)


CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_MD5 = {  # published with torchvision's CIFAR10
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR100_MD5 = {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}

registry.register(registry.DATASETS, "cifar10")(DatasetSpec(
    "cifar10",
    partial(read_cifar, name="cifar10", sub="cifar-10-batches-py", train=CIFAR10_TRAIN, test=["test_batch"],
            label_key=b"labels", classes=10),
    required=[f"cifar-10-batches-py/{f}" for f in CIFAR10_MD5],
    remote=[RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                       md5="c58f30108f718f92721af3b95e74349a", extract=True)],
    description="CIFAR-10 colour images, 32×32, 10 classes, 50k/10k (Krizhevsky 2009)",
    checksums={f"cifar-10-batches-py/{f}": m for f, m in CIFAR10_MD5.items()},
    counts=((5000,) * 10, (1000,) * 10),
))

registry.register(registry.DATASETS, "cifar100")(DatasetSpec(
    "cifar100",
    partial(read_cifar, name="cifar100", sub="cifar-100-python", train=["train"], test=["test"],
            label_key=b"fine_labels", classes=100),
    required=[f"cifar-100-python/{f}" for f in CIFAR100_MD5],
    remote=[RemoteFile("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                       md5="eb9058c3a382ffc7106e4002c42a8d85", extract=True)],
    description="CIFAR-100 colour images, 32×32, 100 fine classes, 50k/10k (Krizhevsky 2009)",
    checksums={f"cifar-100-python/{f}": m for f, m in CIFAR100_MD5.items()},
    counts=((500,) * 100, (100,) * 100),
))
