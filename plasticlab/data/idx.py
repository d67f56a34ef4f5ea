"""The IDX file format of MNIST-style datasets (LeCun et al.), gzip-compressed or not.

Layout (all integers big-endian): bytes 0–1 are zero, byte 2 is the element type
(0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), byte 3 the number
of dimensions d; then d uint32 sizes; then prod(sizes) elements in C order. A file whose header or
length disagrees with this is rejected with a ``UserError``, never read approximately.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

from plasticlab.registry import UserError

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def decode_idx(raw: bytes, source: str, fix: str) -> np.ndarray:
    """Parse IDX bytes (gunzipped first if they start with the gzip magic) into a native-endian array.

    Args:
        raw: the file's bytes.
        source: the file's name, for error messages.
        fix: the command that repairs it, for error messages.

    Raises:
        UserError: bad gzip stream, bad magic number, or a data length that disagrees with the header.
    """

    def bad(why: str) -> UserError:
        return UserError(f"corrupt data file {source}: {why} (run `{fix}`)")

    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncation an EOFError
            raise bad(f"gzip stream broken ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise bad(f"not an IDX file (magic number {raw[:4].hex() or 'missing'})")
    ndim, start = raw[3], 4 + 4 * raw[3]
    if len(raw) < start:
        raise bad(f"header truncated ({len(raw)} bytes, {ndim} dimensions need {start})")
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - start != expected:
        raise bad(f"header says shape {dims} ({expected} bytes of data) but the file has {len(raw) - start}")
    return np.frombuffer(raw, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


def images_and_labels(
    images: np.ndarray, labels: np.ndarray, sources: tuple[str, str], fix: str, classes: int, offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Check an (N, 28, 28) uint8 image array and its (N,) uint8 labels; return (N, 1, 28, 28), int64.

    Labels are shifted by ``-offset`` (EMNIST letters store 1..26) and must then lie in [0, classes).
    """
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise UserError(f"corrupt data file {sources[0]}: expected uint8 images of shape (N, 28, 28), "
                        f"got {images.dtype} {images.shape} (run `{fix}`)")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise UserError(f"corrupt data file {sources[1]}: expected a uint8 label vector, "
                        f"got {labels.dtype} {labels.shape} (run `{fix}`)")
    if len(labels) != len(images):
        raise UserError(f"data files {sources[0]} and {sources[1]} disagree: {len(images)} images but "
                        f"{len(labels)} labels (run `{fix}`)")
    y = labels.astype(np.int64) - offset
    if len(y) and (y.min() < 0 or y.max() >= classes):
        span = f"{y.min() + offset}..{y.max() + offset}"
        raise UserError(f"corrupt data file {sources[1]}: labels span {span}, "
                        f"expected {offset}..{classes - 1 + offset} (run `{fix}`)")
    return images[:, None], y
