"""Writers for tiny files in the real dataset formats (IDX, EMNIST, CIFAR pickles) and archives."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of ``a``: magic (0, 0, type, ndim), big-endian uint32 dims, big-endian data."""
    head = bytes([0, 0, IDX_CODES[a.dtype], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def toy_split(seed: int, per_class: int, classes: int = 10, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random (N, 28, 28) uint8 images; labels offset..classes-1+offset, ``per_class`` each, shuffled."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(classes), per_class)) + offset
    x = rng.integers(0, 256, size=(len(y), 28, 28), dtype=np.uint8)
    return x, y.astype(np.uint8)


def write_mnist(folder: Path, gz: bool = True, per_class: tuple[int, int] = (5, 3)) -> dict[str, np.ndarray]:
    """The four MNIST-layout files in ``folder``; returns the arrays written (by file stem)."""
    folder.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = toy_split(0, per_class[0])
    x_te, y_te = toy_split(1, per_class[1])
    arrays = dict(zip(MNIST_FILES, (x_tr, y_tr, x_te, y_te), strict=True))
    for stem, a in arrays.items():
        raw = idx_bytes(a)
        (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


def cifar_batch(seed: int, n: int, classes: int, label_key: bytes) -> dict:
    """A CIFAR-style batch dict: b"data" (n, 3072) uint8 and a list of int labels under ``label_key``."""
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"toy", b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in rng.integers(0, classes, size=n)]}


def tar_bytes(members: dict[str, bytes], links: dict[str, tuple[str, bytes]] | None = None) -> bytes:
    """A .tar.gz holding regular files ``members`` and links {name: (target, SYMTYPE/LNKTYPE)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (target, kind) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return buf.getvalue()


def py2_cifar_pickle(data: np.ndarray, labels: list[int], label_key: bytes = b"labels") -> bytes:
    """A batch pickled the way the official files were (Python 2 cPickle, protocol 2, numpy 1.x):
    byte strings as BINSTRING and the array via ``numpy.core.multiarray._reconstruct``."""

    def s(b: bytes) -> bytes:  # SHORT_BINSTRING / BINSTRING
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b

    def i(v: int) -> bytes:  # BININT
        return b"J" + struct.pack("<i", v)

    dtype = b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R" + b"(" + i(3) + s(b"|") + b"NNN" \
        + i(-1) + i(-1) + i(0) + b"tb"
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b")
             + b"\x87R" + b"(" + i(1) + i(data.shape[0]) + i(data.shape[1]) + b"\x86" + dtype + b"\x89"
             + s(np.ascontiguousarray(data, np.uint8).tobytes()) + b"tb")
    label_list = b"]" + b"(" + b"".join(i(v) for v in labels) + b"e"
    return b"\x80\x02}(" + s(b"data") + array + s(label_key) + label_list + b"u."


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A .zip holding regular files ``members`` (name → content)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def imagenet32_batch(seed: int, n: int, mean: bool = True) -> dict:
    """A downsampled-ImageNet batch as Chrabaszcz et al.'s script writes it (Python 3 pickle, str
    keys): 'data' (n, 3072) uint8, 'labels' a list of ints 1…1000, and 'mean' in training batches."""
    rng = np.random.default_rng(seed)
    d = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
         "labels": [int(v) for v in rng.integers(1, 1001, size=n)]}
    if mean:
        d["mean"] = d["data"].mean(0)
    return d


def jpeg(colour: tuple[int, int, int] | int, size: int = 64) -> bytes:
    """A ``size``×``size`` JPEG of one colour (an int: a greyscale JPEG)."""
    from PIL import Image

    mode = "L" if isinstance(colour, int) else "RGB"
    buf = io.BytesIO()
    Image.new(mode, (size, size), colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def tiny_imagenet_members(wnids: list[str], train: int, val: int) -> dict[str, bytes]:
    """The files of a Tiny-ImageNet distribution (paths inside the zip) with ``train``/``val`` images
    per class. Image i of class c is the colour (40·c, 10·i, 200) — val images use blue 100 — except
    that the first training image of the last class is greyscale (value 77), as some real ones are."""
    root = "tiny-imagenet-200"
    files = {f"{root}/wnids.txt": "\n".join(wnids).encode() + b"\n", f"{root}/words.txt": b"n0\tthing\n"}
    ann = []
    for c, w in enumerate(wnids):
        for i in range(train):
            grey = c == len(wnids) - 1 and i == 0
            files[f"{root}/train/{w}/images/{w}_{i}.JPEG"] = jpeg(77 if grey else (40 * c, 10 * i, 200))
        files[f"{root}/train/{w}/{w}_boxes.txt"] = b""
        for i in range(val):
            name = f"val_{c * val + i}.JPEG"
            files[f"{root}/val/images/{name}"] = jpeg((40 * c, 10 * i, 100))
            ann.append(f"{name}\t{w}\t0\t0\t63\t63")
    files[f"{root}/val/val_annotations.txt"] = "\n".join(ann).encode() + b"\n"
    files[f"{root}/test/images/test_0.JPEG"] = jpeg((1, 2, 3))
    return files
