"""fetch / verify / list_rows against files served from file:// URLs; path-safe archive unpacking."""

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
import zipfile

import numpy as np
import pytest

from plasticlab import cli, registry
from plasticlab.data import fetch as fetch_mod
from plasticlab.data import load_dataset, read_arrays
from plasticlab.data.fetch import MARKER, fetch, list_rows, safe_extract, verify
from plasticlab.registry import UserError

from .formats import cifar_batch, tar_bytes, write_mnist


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def listing(folder) -> list[str]:
    """The entries of ``folder``, without the verification record."""
    return sorted(set(os.listdir(folder)) - {MARKER})


def status(root, name: str = "mnist") -> str:
    return {r["name"]: r["status"] for r in list_rows(str(root))}[name]


class BrokenResponse(io.BytesIO):
    """A response whose connection drops after the first 10 bytes."""

    headers = {"Content-Length": "999999"}

    def read(self, n=-1):
        if self.tell() > 0:
            raise ConnectionResetError("connection reset by peer")
        return super().read(10)


@pytest.fixture
def mnist_server(tmp_path, monkeypatch):
    """Toy MNIST files in ``tmp_path/server``, and the mnist spec pointed at them by file:// URL."""
    server = tmp_path / "server"
    write_mnist(server)
    spec = registry.DATASETS["mnist"]
    remote = [dataclasses.replace(r, url=(server / r.name).as_uri(), mirrors=(),
                                  md5=md5((server / r.name).read_bytes())) for r in spec.remote]
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(spec, remote=remote))
    return server


def test_fetch_downloads_verifies_and_reads(tmp_path, mnist_server):
    root = tmp_path / "data"
    folder = fetch("mnist", str(root))
    assert folder == root / "mnist"
    assert listing(folder) == sorted(p.name for p in mnist_server.iterdir())
    assert status(root) == "present"
    for p in mnist_server.iterdir():
        assert (folder / p.name).read_bytes() == p.read_bytes()
    assert len(read_arrays("mnist", root).y_train) == 50
    lines = verify("mnist", str(root))
    assert sum(line.startswith("ok  ") and " md5 " in line for line in lines) == 4
    assert lines[-1] == "ok  mnist: read 50 train and 30 test examples of shape (1, 28, 28), 10 classes"


def test_fetch_skips_intact_files(tmp_path, mnist_server, monkeypatch):
    root = str(tmp_path / "data")
    fetch("mnist", root)
    monkeypatch.setattr(fetch_mod, "download", lambda *a, **k: pytest.fail("downloaded again"))
    fetch("mnist", root)


def test_checksum_mismatch_raises_and_leaves_nothing_under_the_name(tmp_path, mnist_server, monkeypatch):
    spec = registry.DATASETS["mnist"]
    bad = [dataclasses.replace(spec.remote[0], md5="0" * 32)] + spec.remote[1:]
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(spec, remote=bad))
    with pytest.raises(UserError) as e:
        fetch("mnist", str(tmp_path / "data"))
    msg = str(e.value)
    assert "could not download train-images-idx3-ubyte.gz" in msg
    assert f"differs from the published {'0' * 32}" in msg and "set aside as train-images-idx3-ubyte.gz.bad" in msg
    assert os.listdir(tmp_path / "data" / "mnist") == ["train-images-idx3-ubyte.gz.bad"]  # no temporary file


def test_mirror_used_when_first_url_fails(tmp_path, mnist_server, monkeypatch):
    spec = registry.DATASETS["mnist"]
    remote = [dataclasses.replace(r, url=(tmp_path / "nowhere" / r.name).as_uri(), mirrors=(r.url,))
              for r in spec.remote]
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(spec, remote=remote))
    fetch("mnist", str(tmp_path / "data"))
    assert len(read_arrays("mnist", tmp_path / "data").y_test) == 30


def test_interrupted_download_leaves_nothing(tmp_path, mnist_server, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: BrokenResponse(b"x" * 100))
    with pytest.raises(UserError, match="could not download .*connection reset by peer.*check the network"):
        fetch("mnist", str(tmp_path / "data"))
    assert os.listdir(tmp_path / "data" / "mnist") == []


def test_verify_names_corrupt_file_and_fix(tmp_path, mnist_server):
    root = tmp_path / "data"
    fetch("mnist", str(root))
    p = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(UserError) as e:
        verify("mnist", str(root))
    assert f"{p} (md5 " in str(e.value)
    assert f"plasticlab data fetch mnist --force --root {root}" in str(e.value)
    fetch("mnist", str(root))  # re-downloads just the corrupt file
    assert verify("mnist", str(root))[-1].startswith("ok  mnist: read 50 train")


def test_verify_missing_and_unchecked(tmp_path):
    with pytest.raises(UserError, match="missing train-images-idx3-ubyte.gz.*fetch mnist --root"):
        verify("mnist", str(tmp_path))
    write_mnist(tmp_path / "mnist", gz=False)
    lines = verify("mnist", str(tmp_path))
    assert sum("no published checksum" in line for line in lines) == 4


def test_failed_download_midway_leaves_nothing_list_or_loading_treats_as_present(tmp_path, mnist_server,
                                                                                 monkeypatch):
    root = tmp_path / "data"
    fetch("mnist", str(root))
    p = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-10])  # an earlier copy went bad; fetch must replace it
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: BrokenResponse(b"x" * 100))
    with pytest.raises(UserError) as e:
        fetch("mnist", str(root))
    msg = str(e.value)
    assert "\n" not in msg and "could not download t10k-images-idx3-ubyte.gz" in msg
    assert "connection reset by peer" in msg and "check the network" in msg
    assert not p.exists() and (root / "mnist" / "t10k-images-idx3-ubyte.gz.bad").is_file()
    assert not [f for f in os.listdir(root / "mnist") if f.endswith(".part")]
    assert status(root) == "bad"
    for load in (read_arrays, load_dataset):
        with pytest.raises(UserError) as e:
            load("mnist", root=root)
        msg = str(e.value)
        assert "\n" not in msg and "t10k-images-idx3-ubyte.gz failed verification" in msg
        assert f"plasticlab data fetch mnist --force --root {root}" in msg


def test_checksum_mismatch_is_quarantined_reported_bad_and_fixed_by_a_later_fetch(tmp_path, mnist_server,
                                                                                  monkeypatch, capsys):
    root = tmp_path / "data"
    good = mnist_server / "train-labels-idx1-ubyte.gz"
    bad_server = tmp_path / "bad-server"
    bad_server.mkdir()
    (bad_server / good.name).write_bytes(good.read_bytes()[:-5])  # the source serves a truncated file
    spec = registry.DATASETS["mnist"]
    served = [dataclasses.replace(r, url=(bad_server / r.name).as_uri()) if r.name == good.name else r
              for r in spec.remote]
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(spec, remote=served))
    with pytest.raises(UserError) as e:
        fetch("mnist", str(root))
    msg = str(e.value)
    assert "\n" not in msg and f"could not download {good.name}" in msg and "differs from the published" in msg
    assert f"set aside as {good.name}.bad" in msg
    folder = root / "mnist"
    assert not (folder / good.name).exists()
    assert (folder / f"{good.name}.bad").read_bytes() == good.read_bytes()[:-5]
    assert status(root) == "bad"
    assert cli.main(["data", "list", "--root", str(root)]) == 0
    assert [line.split()[:2] for line in capsys.readouterr().out.splitlines() if line.startswith("mnist ")] \
        == [["mnist", "bad"]]
    assert cli.main(["data", "verify", "mnist", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{folder / good.name}.bad" in err and "fetch mnist --force" in err
    with pytest.raises(UserError, match=f"{good.name} failed verification.*fetch mnist --force"):
        read_arrays("mnist", root)
    # the same file from a mirror that serves it intact: the quarantined copy goes, the dataset is present
    fixed = [dataclasses.replace(r, mirrors=(good.as_uri(),)) if r.name == good.name else r for r in served]
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(spec, remote=fixed))
    fetch("mnist", str(root))
    assert listing(folder) == sorted(p.name for p in mnist_server.iterdir())
    assert status(root) == "present"
    assert verify("mnist", str(root))[-1].startswith("ok  mnist: read 50 train")
    assert len(read_arrays("mnist", root).y_train) == 50


def test_file_truncated_after_fetch_is_listed_bad_without_hashing(tmp_path, mnist_server, monkeypatch):
    root = tmp_path / "data"
    fetch("mnist", str(root))
    p = root / "mnist" / "train-labels-idx1-ubyte.gz"
    size = p.stat().st_size
    p.write_bytes(p.read_bytes()[:-3])
    monkeypatch.setattr(fetch_mod, "file_digest", lambda *a: pytest.fail("list or loading hashed a file"))
    assert status(root) == "bad"
    with pytest.raises(UserError) as e:
        read_arrays("mnist", root)
    assert f"{p} ({size - 3} bytes, {size} when its checksum was verified)" in str(e.value)
    assert "fetch mnist --force" in str(e.value)


def test_corruption_found_by_verify_is_listed_bad_until_fetched(tmp_path, mnist_server):
    root = tmp_path / "data"
    fetch("mnist", str(root))
    p = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF  # same size: only a checksum sees it
    p.write_bytes(bytes(data))
    assert status(root) == "present"  # list does not hash
    with pytest.raises(UserError, match=f"{p} \\(md5 .*fetch mnist --force"):
        verify("mnist", str(root))
    assert status(root) == "bad"
    with pytest.raises(UserError, match=f"is bad: {p} \\(md5 .*fetch mnist --force"):
        read_arrays("mnist", root)
    fetch("mnist", str(root))
    assert status(root) == "present" and len(read_arrays("mnist", root).y_test) == 30


def test_force_refetch_with_mismatching_source_keeps_the_intact_copy(tmp_path, mnist_server):
    root = tmp_path / "data"
    fetch("mnist", str(root))
    target = mnist_server / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(b"changed upstream")
    with pytest.raises(UserError, match="could not download t10k-labels.*differs from the published"):
        fetch("mnist", str(root), force=True)
    assert (root / "mnist" / "t10k-labels-idx1-ubyte.gz.bad").read_bytes() == b"changed upstream"
    assert status(root) == "present"  # the copy in place still matches its checksum
    assert len(read_arrays("mnist", root).y_test) == 30


def cifar10_archive(tmp_path, monkeypatch, wrong_sum: str | None = None) -> None:
    """Serve a toy CIFAR-10 tarball by file:// and point the cifar10 spec at it, with the members'
    published md5s right except that of ``wrong_sum``."""
    batches = {f"data_batch_{i}": cifar_batch(i, 3, 10, b"labels") for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(7, 2, 10, b"labels")
    members = {f"cifar-10-batches-py/{k}": pickle.dumps(v, protocol=2) for k, v in batches.items()}
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(tar_bytes(members))
    spec = registry.DATASETS["cifar10"]
    remote = dataclasses.replace(spec.remote[0], url=archive.as_uri(), md5=md5(archive.read_bytes()))
    sums = {k: "0" * 32 if k == wrong_sum else md5(v) for k, v in members.items()}
    monkeypatch.setitem(registry.DATASETS, "cifar10", dataclasses.replace(spec, remote=[remote], checksums=sums))


def test_unpacked_member_with_wrong_checksum_is_quarantined(tmp_path, monkeypatch):
    cifar10_archive(tmp_path, monkeypatch, wrong_sum="cifar-10-batches-py/test_batch")
    root = tmp_path / "data"
    with pytest.raises(UserError) as e:
        fetch("cifar10", str(root))
    p = root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    assert "\n" not in str(e.value) and f"{p} (md5 " in str(e.value) and "set aside as test_batch.bad" in str(e.value)
    assert not p.exists() and p.with_name("test_batch.bad").is_file()
    assert status(root, "cifar10") == "bad"
    with pytest.raises(UserError, match="test_batch failed verification.*fetch cifar10 --force"):
        read_arrays("cifar10", root)
    cifar10_archive(tmp_path, monkeypatch)  # the published checksums corrected
    fetch("cifar10", str(root))
    assert status(root, "cifar10") == "present" and not p.with_name("test_batch.bad").exists()
    assert len(read_arrays("cifar10", root).y_test) == 2


def test_fetch_tar_extracts_and_removes_archive(tmp_path, monkeypatch):
    cifar10_archive(tmp_path, monkeypatch)
    root = tmp_path / "data"
    folder = fetch("cifar10", str(root))
    assert listing(folder) == ["cifar-10-batches-py"]  # archive deleted, no temporary directory left
    arr = read_arrays("cifar10", root)
    want = [cifar_batch(i, 3, 10, b"labels")[b"labels"] for i in range(1, 6)]  # the archive's five batches
    assert arr.y_train.tolist() == sum(want, [])
    assert sum(" md5 " in line for line in verify("cifar10", str(root))) == 6
    (folder / "cifar-10-batches-py" / "test_batch").write_bytes(b"junk")
    with pytest.raises(UserError, match="test_batch .*fetch cifar10 --force"):
        verify("cifar10", str(root))
    fetch("cifar10", str(root), force=True)
    assert len(read_arrays("cifar10", root).y_test) == 2


def test_archive_placed_by_hand_is_reused(tmp_path, monkeypatch):
    members = {f"cifar-100-python/{k}": pickle.dumps(cifar_batch(1, 2, 100, b"fine_labels")) for k in ("train", "test")}
    data = tar_bytes(members)
    spec = registry.DATASETS["cifar100"]
    remote = dataclasses.replace(spec.remote[0], url="file:///nonexistent.tar.gz", md5=md5(data))
    monkeypatch.setitem(registry.DATASETS, "cifar100", dataclasses.replace(spec, remote=[remote], checksums={}))
    (tmp_path / "cifar100").mkdir()
    (tmp_path / "cifar100" / "cifar-100-python.tar.gz").write_bytes(data)
    monkeypatch.setattr(fetch_mod, "download", lambda *a, **k: pytest.fail("downloaded"))
    fetch("cifar100", str(tmp_path))
    assert listing(tmp_path / "cifar100") == ["cifar-100-python"]
    assert read_arrays("cifar100", tmp_path).classes == 100


def test_cifar_spec_checksums_are_the_published_ones():
    spec = registry.DATASETS["cifar10"]
    assert spec.remote[0].md5 == "c58f30108f718f92721af3b95e74349a" and spec.remote[0].extract
    assert spec.checksums["cifar-10-batches-py/test_batch"] == "40351d587109b95175f43aff81a1287e"
    assert registry.DATASETS["cifar100"].remote[0].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert registry.DATASETS["emnist-letters"].remote[0].md5 == "58c8d27c78d21e728a6bc7b3cc06412e"


@pytest.mark.parametrize("members, links, bad", [
    ({"ok.txt": b"1", "../evil.txt": b"x"}, None, "'../evil.txt' has a '..' component"),
    ({"a/../../evil.txt": b"x"}, None, "a '..' component"),
    ({"/tmp/evil.txt": b"x"}, None, "an absolute path"),
    ({"d/f": b"1"}, {"d/link": ("../../etc/passwd", tarfile.SYMTYPE)}, "a link to '../../etc/passwd'"),
    ({"d/f": b"1"}, {"d/link": ("/etc/passwd", tarfile.SYMTYPE)}, "outside the archive"),
    ({"d/f": b"1"}, {"d/hard": ("../x", tarfile.LNKTYPE)}, "outside the archive"),
    ({"d/f": b"1"}, {"d/fifo": ("", tarfile.FIFOTYPE)}, "a device or special file"),
])
def test_tar_unsafe_members_refused(tmp_path, members, links, bad):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes(members, links))
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(UserError, match=f"refusing to unpack .*{bad}"):
        safe_extract(archive, dest)
    assert os.listdir(dest) == [] and sorted(os.listdir(tmp_path / "out")) == ["inner"]


def test_tar_link_inside_archive_allowed(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(tar_bytes({"d/f": b"hello"}, {"d/sub/link": ("../f", tarfile.SYMTYPE)}))
    dest = tmp_path / "out"
    dest.mkdir()
    assert safe_extract(archive, dest) == ["d"]
    assert (dest / "d" / "sub" / "link").read_bytes() == b"hello"


@pytest.mark.parametrize("name, bad", [("../evil.txt", "a '..' component"), ("/abs.txt", "an absolute path"),
                                       ("C:/win.txt", "an absolute path")])
def test_zip_unsafe_members_refused(tmp_path, name, bad):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"1")
        zf.writestr(name, b"x")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UserError, match=f"member '{name}' has {bad}"):
        safe_extract(archive, dest)
    assert os.listdir(dest) == []


def test_zip_symlink_refused_and_plain_zip_unpacked(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("gzip/x.gz", b"data")
        info = zipfile.ZipInfo("gzip/link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UserError, match="'gzip/link' has a symbolic link"):
        safe_extract(archive, dest)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("gzip/x.gz", b"data")
    assert safe_extract(archive, dest) == ["gzip"] and (dest / "gzip" / "x.gz").read_bytes() == b"data"


def test_not_an_archive(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"\x1f\x8b junk")
    with pytest.raises(UserError, match="neither a zip nor a tar archive|cannot unpack"):
        safe_extract(tmp_path / "a.tar.gz", tmp_path)


def test_list_rows(tmp_path):
    write_mnist(tmp_path / "mnist")
    rows = {r["name"]: r for r in list_rows(str(tmp_path))}
    assert set(rows) >= {"digits", "mnist", "fashion-mnist", "kmnist", "emnist-balanced", "emnist-letters",
                         "emnist-digits", "cifar10", "cifar100"}
    assert rows["digits"]["status"] == "embedded" and rows["digits"]["path"] == ""
    assert rows["mnist"] == {"name": "mnist", "status": "present", "path": str(tmp_path / "mnist"),
                             "description": registry.DATASETS["mnist"].description}
    assert rows["cifar10"]["status"] == "missing"
    assert all(set(r) == {"name", "status", "path", "description"} for r in rows.values())


def test_embedded_needs_no_fetch(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_mod, "download", lambda *a, **k: pytest.fail("downloaded"))
    fetch("digits", str(tmp_path))
    assert verify("digits", str(tmp_path))[0].startswith("ok  digits")
    assert not np.any([p.exists() for p in tmp_path.iterdir()])
