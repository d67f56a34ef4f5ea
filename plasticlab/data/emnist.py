"""EMNIST (Cohen et al. 2017): handwritten digits and letters from NIST SD 19 in MNIST's format.

Three splits are registered; they share the directory ``<data root>/emnist`` and the official
archive ``gzip.zip`` (https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip, 562 MB), which is read
in place (no unpacking). For split S each of the four IDX files
``emnist-S-{train,test}-{images-idx3,labels-idx1}-ubyte.gz`` is looked up, in order, as

    emnist/<file>.gz, emnist/<file>, emnist/gzip/<file>.gz, emnist/gzip/<file>,
    emnist/gzip.zip → member gzip/<file>.gz

so an unpacked copy of the archive (its ``gzip/`` folder) or loose files work too.

The files store every image transposed (column-major); the reader transposes them back so that
they look like MNIST. ``emnist-letters`` labels are stored as 1..26 (a..z, case merged) and are
mapped to 0..25.
"""

from __future__ import annotations

import zipfile
import zlib
from functools import partial
from pathlib import Path

from plasticlab import registry
from plasticlab.data.base import ArrayData, DatasetSpec, RemoteFile, fetch_hint, find_file
from plasticlab.data.idx import decode_idx, images_and_labels
from plasticlab.registry import UserError

ARCHIVE = RemoteFile("gzip.zip", "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
                     md5="58c8d27c78d21e728a6bc7b3cc06412e")
PARTS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "test-images-idx3-ubyte", "test-labels-idx1-ubyte")
SPLITS = {  # split: (classes, label offset, description, (train, test) examples: every class has an equal share)
    "balanced": (47, 0, "EMNIST balanced: digits + letters, 28×28, 47 classes, 112,800/18,800", (112_800, 18_800)),
    "letters": (26, 1, "EMNIST letters: a–z case merged, 28×28, 26 classes, 124,800/20,800", (124_800, 20_800)),
    "digits": (10, 0, "EMNIST digits, 28×28, 10 classes, 240,000/40,000", (240_000, 40_000)),
}


def alternatives(file: str) -> tuple[str, ...]:
    """Where IDX file ``file`` (no ``.gz``) may live under the EMNIST directory; the archive last."""
    return (f"{file}.gz", file, f"gzip/{file}.gz", f"gzip/{file}", ARCHIVE.name)


def read_member(folder: Path, file: str, fix: str) -> tuple[bytes, str]:
    """The bytes of IDX file ``file`` (loose, or ``gzip/<file>.gz`` inside ``gzip.zip``) and its name."""
    path = find_file(folder, alternatives(file))
    if path is None:
        raise UserError(f"EMNIST file {file}.gz not found in {folder} (run `{fix}`)")
    if path.name != ARCHIVE.name:
        return path.read_bytes(), str(path)
    member = f"gzip/{file}.gz"
    try:
        with zipfile.ZipFile(path) as zf:
            if member not in zf.namelist():
                raise UserError(f"{path} has no member {member}: not the official EMNIST archive "
                                f"(run `{fix}`)")
            return zf.read(member), f"{path}:{member}"
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise UserError(f"corrupt archive {path}: {e} (run `{fix}`)") from None


def read_emnist(folder: Path, split: str) -> ArrayData:
    """Read split ``split`` from ``folder``; images un-transposed to (N, 1, 28, 28)."""
    classes, offset, _, _ = SPLITS[split]
    fix = fetch_hint(f"emnist-{split}", folder.parent, force=True)
    out = []
    for images_file, labels_file in (PARTS[:2], PARTS[2:]):
        raw_x, src_x = read_member(folder, f"emnist-{split}-{images_file}", fix)
        raw_y, src_y = read_member(folder, f"emnist-{split}-{labels_file}", fix)
        x, y = images_and_labels(decode_idx(raw_x, src_x, fix), decode_idx(raw_y, src_y, fix),
                                 (src_x, src_y), fix, classes, offset)
        out += [x.transpose(0, 1, 3, 2).copy(), y]  # why: EMNIST stores each image as its transpose
    return ArrayData(*out, classes=classes)


for _split, (_classes, _offset, _desc, _n) in SPLITS.items():
    registry.register(registry.DATASETS, f"emnist-{_split}")(DatasetSpec(
        f"emnist-{_split}",
        partial(read_emnist, split=_split),
        required=[alternatives(f"emnist-{_split}-{p}") for p in PARTS],
        remote=[ARCHIVE],
        description=_desc + " (Cohen et al. 2017)",
        folder="emnist",
        counts=((_n[0] // _classes,) * _classes, (_n[1] // _classes,) * _classes),
    ))
