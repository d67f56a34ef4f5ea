"""Tiny-ImageNet (Le & Yang 2015, Stanford CS231N): 200 ImageNet classes at 64×64 colour.

500 training and 50 validation images per class (100,000 / 10,000; the validation set serves as
the test set — the official test images have no labels and are not read). The distribution
``tiny-imagenet-200.zip`` (md5 published with it and by many loaders) unpacks to::

    tiny-imagenet-200/wnids.txt                          the 200 WordNet ids
    tiny-imagenet-200/train/<wnid>/images/*.JPEG         500 per class
    tiny-imagenet-200/val/images/*.JPEG                  10,000
    tiny-imagenet-200/val/val_annotations.txt            file<TAB>wnid<TAB>box…

Class c is the c-th WordNet id in sorted order (torchvision's ``ImageFolder`` convention); images
are read in sorted file order. Some images are greyscale JPEGs: they are converted to RGB (the
grey value in all three channels), so every image is (3, 64, 64) uint8. Decoding the 110,000 JPEGs
(with Pillow, installed with matplotlib) runs on a thread pool of one thread per core.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec, RemoteFile, fetch_hint, get_spec, missing_error
from plasticlab.registry import UserError

ROOT = "tiny-imagenet-200"
SIZE = 64


def decode(path: Path, fix: str) -> np.ndarray:
    """One JPEG as (3, 64, 64) uint8 (greyscale repeated into three channels)."""
    from PIL import Image  # why: Pillow is imported only when Tiny-ImageNet is read

    try:
        with Image.open(path) as im:
            x = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises these for damaged or non-image files
        raise UserError(f"corrupt data file {path}: cannot decode ({type(e).__name__}: {e}) (run `{fix}`)") from None
    if x.shape != (SIZE, SIZE, 3):
        raise UserError(f"corrupt data file {path}: expected a {SIZE}×{SIZE} image, got {x.shape[1]}×{x.shape[0]} "
                        f"(run `{fix}`)")
    return x.transpose(2, 0, 1)


def decode_all(paths: list[Path], fix: str) -> np.ndarray:
    """Images (N, 3, 64, 64) uint8, decoded on ``os.cpu_count()`` threads (Pillow releases the GIL)."""
    if not paths:
        return np.zeros((0, 3, SIZE, SIZE), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return np.stack(list(pool.map(lambda p: decode(p, fix), paths, chunksize=256)))


def read_tiny_imagenet(folder: Path) -> ArrayData:
    base, fix = folder / ROOT, fetch_hint("tiny-imagenet", folder.parent, force=True)
    wnids = sorted(set((base / "wnids.txt").read_text().split()))
    index = {w: i for i, w in enumerate(wnids)}
    absent = [f"{ROOT}/train/{w}/images" for w in wnids if not (base / "train" / w / "images").is_dir()]
    if absent:
        raise missing_error(get_spec("tiny-imagenet"), folder, absent, folder.parent)
    train = [(p, index[w]) for w in wnids for p in sorted((base / "train" / w / "images").glob("*.JPEG"))]
    val = []
    for n, line in enumerate((base / "val" / "val_annotations.txt").read_text().splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in index:
            raise UserError(f"corrupt data file {base / 'val' / 'val_annotations.txt'}: line {n} does not name "
                            f"an image and one of the wnids.txt classes (run `{fix}`)")
        val.append((base / "val" / "images" / parts[0], index[parts[1]]))
    val.sort()
    arrays = []
    for items in (train, val):
        paths = [p for p, _ in items]
        arrays += [decode_all(paths, fix), np.array([c for _, c in items], dtype=np.int64)]
    return ArrayData(*arrays, classes=len(wnids))


registry.register(registry.DATASETS, "tiny-imagenet")(DatasetSpec(
    "tiny-imagenet", read_tiny_imagenet,
    required=[f"{ROOT}/wnids.txt", f"{ROOT}/val/val_annotations.txt"],
    remote=[RemoteFile("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                       md5="90528d7ca1a48142e341f4ef8d21d0de", extract=True)],
    description="Tiny-ImageNet colour images, 64×64, 200 classes, 100k/10k (Le & Yang 2015)",
    counts=((500,) * 200, (50,) * 200),
))
