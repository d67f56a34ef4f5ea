"""Download, verify and list datasets: what ``plasticlab data fetch | verify | list`` call.

``fetch`` downloads every ``RemoteFile`` of a dataset into its directory. Each download goes to a
temporary file in that directory, its checksum is compared with the published one, and only then
is it renamed into place (``os.replace``): an interrupted or corrupted download never leaves a file
under the final name. Archives are unpacked path-safely (members with absolute paths, ``..``, links
leading outside, or device files are refused) and then deleted. URLs may be ``file://`` (a local
mirror; also how the tests serve files).

Example::

    fetch("mnist")                 # → ~/.cache/plasticlab/mnist with the four .gz files
    verify("mnist")                # checksums + a full parse; raises UserError if anything is off
    list_rows()                    # [{"name", "status", "path", "description"}, ...]
"""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from plasticlab import registry
from plasticlab.data.base import (
    DatasetSpec,
    RemoteFile,
    dataset_dir,
    fetch_hint,
    find_file,
    get_spec,
    missing_error,
    missing_files,
)
from plasticlab.registry import UserError

USER_AGENT = "plasticlab-data-fetch"
TIMEOUT_S = 60
CHUNK = 1 << 20


def file_digest(path: Path, algo: str) -> str:
    """Hex digest (``md5`` or ``sha256``) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def published_digest(rf: RemoteFile) -> tuple[str, str] | None:
    """(algorithm, hex digest) of a remote file, preferring sha256; None when none is published."""
    if rf.sha256:
        return "sha256", rf.sha256.lower()
    if rf.md5:
        return "md5", rf.md5.lower()
    return None


def known_digests(spec: DatasetSpec) -> dict[str, tuple[str, str]]:
    """Every file of ``spec`` with a published checksum, by path relative to its directory.

    Downloaded files that stay (not archives, which are deleted after unpacking) plus the unpacked
    members listed in ``spec.checksums``.
    """
    out = {rf.name: published_digest(rf) for rf in spec.remote if not rf.extract and published_digest(rf)}
    out.update({rel: ("md5", md5.lower()) for rel, md5 in spec.checksums.items()})
    return out


def corrupt_files(spec: DatasetSpec, folder: Path) -> list[str]:
    """Present files of ``spec`` whose checksum differs from the published one, described in words."""
    bad = []
    for rel, (algo, expected) in known_digests(spec).items():
        path = folder / rel
        if path.is_file() and (got := file_digest(path, algo)) != expected:
            bad.append(f"{path} ({algo} {got}, published {expected})")
    return bad


def intact(path: Path, rf: RemoteFile) -> bool:
    """Whether ``path`` exists and matches ``rf``'s published checksum (if it has one)."""
    digest = published_digest(rf)
    return path.is_file() and (digest is None or file_digest(path, digest[0]) == digest[1])


def download(rf: RemoteFile, dest: Path, retry: str = "plasticlab data fetch") -> None:
    """Download ``rf`` to ``dest`` atomically, trying ``rf.url`` then each mirror.

    ``retry`` is the command named in the error message (after placing the file by hand).

    Raises:
        UserError: every URL failed (network error or checksum mismatch); nothing is left behind.
    """
    failures = []
    for url in (rf.url, *rf.mirrors):
        try:
            download_url(url, dest, published_digest(rf))
            return
        except ChecksumMismatch as e:
            failures.append(str(e))
        except (OSError, http.client.HTTPException) as e:  # URLError and HTTPError are OSErrors
            failures.append(f"{url}: {e}")
    raise UserError(
        f"could not download {rf.name}: {'; '.join(failures)} (check the network and retry, or put "
        f"{rf.name} into {dest.parent} by hand and run `{retry}`)"
    )


class ChecksumMismatch(Exception):
    """A downloaded file's digest differs from the published one."""


def download_url(url: str, dest: Path, digest: tuple[str, str] | None) -> None:
    """Stream ``url`` into a temporary file next to ``dest``, check ``digest``, then rename it to ``dest``.

    A progress bar is shown when stderr is a terminal. On any failure the temporary file is removed.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.new(digest[0] if digest else "sha256", usedforsecurity=False)
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            size = response.headers.get("Content-Length")
            with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=dest.name, disable=not sys.stderr.isatty(), leave=False) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest and h.hexdigest() != digest[1]:
            raise ChecksumMismatch(
                f"{url}: {digest[0]} {h.hexdigest()} differs from the published {digest[1]} "
                f"(download corrupted or the source changed; the file was discarded)"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def member_problem(name: str) -> str | None:
    """Why an archive member name is unsafe to unpack (absolute, drive letter, ``..``), or None."""
    norm = name.replace("\\", "/")
    parts = PurePosixPath(norm).parts
    if norm.startswith("/") or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        return "an absolute path"
    if ".." in parts:
        return "a '..' component"
    return None


def check_tar_member(m: tarfile.TarInfo) -> str | None:
    """Why a tar member is unsafe: a bad name, a link leading outside the archive, a device file."""
    if why := member_problem(m.name):
        return why
    if m.issym() or m.islnk():
        target = m.linkname if m.islnk() else posixpath.join(posixpath.dirname(m.name), m.linkname)
        escapes = posixpath.normpath(target).split("/")[0] == ".."
        if escapes or member_problem(m.linkname) == "an absolute path":
            return f"a link to {m.linkname!r} outside the archive"
    elif not (m.isfile() or m.isdir()):
        return "a device or special file"
    return None


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Unpack a zip or tar (any compression) into ``dest``; return the top-level names it created.

    Every member is checked before anything is written. Members are unpacked into a temporary
    directory inside ``dest``, then each top-level entry replaces any older copy in ``dest``.

    Raises:
        UserError: an unsafe member (names it), or an unreadable archive.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    why = member_problem(info.filename)
                    if why is None and stat.S_ISLNK(info.external_attr >> 16):
                        why = "a symbolic link"
                    if why:
                        raise unsafe_member(archive, info.filename, why)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for m in members:
                    if why := check_tar_member(m):
                        raise unsafe_member(archive, m.name, why)
                # why: the "data" filter (Python ≥ 3.11.4) repeats these checks and drops setuid bits
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(tmp, members=members, **extra)
        else:
            raise UserError(f"{archive} is neither a zip nor a tar archive (delete it and fetch again)")
        tops = sorted(os.listdir(tmp))
        for top in tops:
            target = dest / top
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(tmp / top, target)
        return tops
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise UserError(f"cannot unpack {archive}: {e} (the archive is corrupt; delete it and fetch again)") \
            from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unsafe_member(archive: Path, member: str, why: str) -> UserError:
    return UserError(f"refusing to unpack {archive}: member {member!r} has {why} "
                     f"(the archive is damaged or malicious; delete it)")


def fetch(name: str, root: str | None = None, force: bool = False) -> Path:
    """Download dataset ``name`` into its directory under the data root; return that directory.

    Without ``force``, a dataset whose files are all present and match their published checksums is
    left alone, and only missing or corrupt files are downloaded again (an intact archive already
    in the directory is reused). With ``force`` every file is downloaded anew. Embedded datasets
    need nothing and return their (unused) directory.

    Raises:
        UserError: no download source, a network failure, a checksum mismatch or an unsafe archive.
    """
    spec = get_spec(name)
    folder = dataset_dir(spec, root)
    if spec.embedded:
        return folder
    if not spec.remote:
        raise UserError(f"dataset {name!r} has no download source: put its files into {folder} by hand")
    folder.mkdir(parents=True, exist_ok=True)
    if not force and not missing_files(spec, folder) and not corrupt_files(spec, folder):
        return folder
    for rf in spec.remote:
        path = folder / rf.name
        if force or not intact(path, rf):
            download(rf, path, retry=fetch_hint(name, root))
        if rf.extract:
            safe_extract(path, folder)
            path.unlink()
    if missing := missing_files(spec, folder):
        raise UserError(f"downloaded {name!r} but {', '.join(missing)} are still missing in {folder} "
                        f"(the source's layout changed; please report it)")
    if bad := corrupt_files(spec, folder):
        raise UserError(f"downloaded {name!r} but these files do not match their published checksums: "
                        f"{'; '.join(bad)} (please report it)")
    return folder


def verify(name: str, root: str | None = None) -> list[str]:
    """Re-check dataset ``name``: published checksums of the files present, then a full read.

    Returns:
        One line per check, e.g. ``"ok  /data/mnist/train-images-idx3-ubyte.gz  md5 f68b…"``.

    Raises:
        UserError: files missing, a checksum mismatch (names the files and the fix
            ``plasticlab data fetch NAME --force``), or contents that do not parse.
    """
    spec = get_spec(name)
    if spec.embedded:
        return [f"ok  {name}: bundled with a dependency, nothing to verify"]
    folder = dataset_dir(spec, root)
    if missing := missing_files(spec, folder):
        raise missing_error(spec, folder, missing, root)
    if bad := corrupt_files(spec, folder):
        fix = fetch_hint(name, root, force=True)
        raise UserError(f"dataset {name!r} is corrupt: {'; '.join(bad)} (run `{fix}`)")
    known = known_digests(spec)
    lines = [f"ok  {folder / rel}  {algo} {digest}" for rel, (algo, digest) in known.items()
             if (folder / rel).is_file()]
    for item in spec.required:
        path = find_file(folder, item)
        if path is not None and path.relative_to(folder).as_posix() not in known:
            lines.append(f"--  {path}  no published checksum (checked by reading it below)")
    arr = spec.read(folder)
    lines.append(f"ok  {name}: read {len(arr.y_train)} train and {len(arr.y_test)} test examples of shape "
                 f"{tuple(arr.x_train.shape[1:])}, {arr.classes} classes")
    return lines


def list_rows(root: str | None = None) -> list[dict]:
    """One row per registered dataset: ``name``, ``status`` (present / missing / embedded),
    ``path`` (its directory; empty when embedded) and ``description``. Only checks that files exist."""
    rows = []
    for name in sorted(registry.DATASETS):
        spec = registry.DATASETS[name]
        folder = dataset_dir(spec, root)
        status = "embedded" if spec.embedded else ("missing" if missing_files(spec, folder) else "present")
        rows.append({"name": name, "status": status, "path": "" if spec.embedded else str(folder),
                     "description": spec.description})
    return rows
