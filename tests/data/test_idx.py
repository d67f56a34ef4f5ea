"""IDX parsing: exact arrays for valid files, UserError for every kind of damage."""

import gzip

import numpy as np
import pytest

from plasticlab.data.idx import decode_idx, images_and_labels
from plasticlab.registry import UserError

from .formats import idx_bytes

FIX = "plasticlab data fetch mnist --force"


def test_decode_uint8_plain_and_gzip():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(a)
    assert raw[:4] == bytes([0, 0, 0x08, 3]) and raw[4:16] == bytes([0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    np.testing.assert_array_equal(decode_idx(raw, "f", FIX), a)
    np.testing.assert_array_equal(decode_idx(gzip.compress(raw), "f", FIX), a)


def test_decode_big_endian_types_to_native():
    a = np.array([-2, 300, 7], dtype=np.int16)
    out = decode_idx(idx_bytes(a), "f", FIX)
    assert out.dtype == np.int16 and out.dtype.isnative and out.tolist() == [-2, 300, 7]
    f = np.array([[1.5, -0.25]], dtype=np.float32)
    np.testing.assert_array_equal(decode_idx(idx_bytes(f), "f", FIX), f)


@pytest.mark.parametrize("damage, message", [
    (lambda r: b"\x01" + r[1:], "not an IDX file"),           # first byte must be 0
    (lambda r: r[:2] + b"\x07" + r[3:], "not an IDX file"),   # unknown element type
    (lambda r: r[:3] + b"\x00" + r[4:], "not an IDX file"),   # zero dimensions
    (lambda r: r[:6], "header truncated"),
    (lambda r: r[:-1], "the file has 23"),                    # one data byte short
    (lambda r: r + b"\x00", "the file has 25"),               # trailing garbage
    (lambda r: b"", "magic number missing"),
])
def test_damaged_idx_raises(damage, message):
    raw = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))
    with pytest.raises(UserError, match=message) as e:
        decode_idx(damage(raw), "/d/train-images-idx3-ubyte", FIX)
    assert "/d/train-images-idx3-ubyte" in str(e.value) and FIX in str(e.value)


def test_damaged_gzip_raises():
    gz = gzip.compress(idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8)))
    with pytest.raises(UserError, match="gzip stream broken"):
        decode_idx(gz[: len(gz) // 2], "f.gz", FIX)  # truncated download
    flipped = gz[:-8] + bytes([gz[-8] ^ 0xFF]) + gz[-7:]  # CRC32 no longer matches
    with pytest.raises(UserError, match="gzip stream broken"):
        decode_idx(flipped, "f.gz", FIX)


def test_images_and_labels_checks():
    x, y = np.zeros((3, 28, 28), np.uint8), np.array([1, 26, 5], np.uint8)
    xs, ys = images_and_labels(x, y, ("i", "l"), FIX, classes=26, offset=1)
    assert xs.shape == (3, 1, 28, 28) and ys.dtype == np.int64 and ys.tolist() == [0, 25, 4]
    with pytest.raises(UserError, match="labels span 0..26, expected 1..26"):
        images_and_labels(x, np.array([0, 26, 5], np.uint8), ("i", "l"), FIX, classes=26, offset=1)
    with pytest.raises(UserError, match="3 images but 2 labels"):
        images_and_labels(x, y[:2], ("i", "l"), FIX, classes=26, offset=1)
    with pytest.raises(UserError, match=r"shape \(N, 28, 28\)"):
        images_and_labels(np.zeros((3, 28, 27), np.uint8), y, ("i", "l"), FIX, classes=26, offset=1)
    with pytest.raises(UserError, match="uint8 label vector"):
        images_and_labels(x, y.astype(np.int32), ("i", "l"), FIX, classes=26, offset=1)
