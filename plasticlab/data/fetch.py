"""Download, verify and list datasets: what ``plasticlab data fetch | verify | list`` call.

``fetch`` downloads every ``RemoteFile`` of a dataset into its directory. Each download goes to a
temporary file in that directory, its checksum is compared with the published one, and only then
is it renamed into place (``os.replace``): an interrupted or corrupted download never leaves a file
under the final name. A download whose checksum differs, and a file already in place that fails its
checksum, are set aside ("quarantined") as ``NAME.bad``, a name no reader looks for. Archives are
unpacked path-safely (members with absolute paths, ``..``, links leading outside, or device files are
refused) and then deleted. URLs may be ``file://`` (a local mirror; also how the tests serve files).

Every successful ``fetch`` and every ``verify`` records what it checked in ``MARKER`` (a hidden JSON
file in the dataset directory): the size of each file that matched its checksum and the files that
did not. ``list_rows`` and loading (``base.read_arrays``) use it as a cheap check without hashing
anything: a dataset is *bad* when a file is recorded as corrupt, a file's size differs from the one
recorded at verification, or a required file is missing while a quarantined copy exists.

Example::

    fetch("mnist")                 # → ~/.cache/plasticlab/mnist with the four .gz files
    verify("mnist")                # checksums + a full parse; raises UserError if anything is off
    list_rows()                    # [{"name", "status", "path", "description"}, ...]
"""

from __future__ import annotations

import hashlib
import http.client
import json
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
from collections.abc import Iterable
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
MARKER = ".plasticlab-verified.json"
"""Per dataset directory: ``{"verified": {rel: {"size", "algo", "digest"}}, "bad": {rel: why}}``."""
QUARANTINE = ".bad"


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


def corrupt_files(spec: DatasetSpec, folder: Path, rels: Iterable[str] | None = None) -> dict[str, str]:
    """Present files of ``spec`` (or only those in ``rels``) whose checksum differs from the published
    one: relative path → ``"md5 <got>, published <expected>"``. Hashes every file it checks."""
    bad = {}
    for rel, (algo, expected) in known_digests(spec).items():
        path = folder / rel
        if (rels is None or rel in rels) and path.is_file() and (got := file_digest(path, algo)) != expected:
            bad[rel] = f"{algo} {got}, published {expected}"
    return bad


def quarantine_path(path: Path) -> Path:
    """Where a file that failed verification is set aside: ``path`` with ``.bad`` appended."""
    return path.with_name(path.name + QUARANTINE)


def candidate_names(spec: DatasetSpec) -> set[str]:
    """Every relative path a file of ``spec`` may have: downloads, checksummed files, required alternatives."""
    names = set(known_digests(spec)) | {rf.name for rf in spec.remote}
    for item in spec.required:
        names.update((item,) if isinstance(item, str) else item)
    return names


def quarantined(spec: DatasetSpec, folder: Path) -> list[Path]:
    """The quarantined (``.bad``) copies of ``spec``'s files in ``folder``."""
    return sorted(q for rel in candidate_names(spec) if (q := quarantine_path(folder / rel)).is_file())


def read_marker(folder: Path) -> dict:
    """The verification record of ``folder`` (see ``MARKER``); empty when absent or unreadable."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {"verified": {}, "bad": {}}
    data = data if isinstance(data, dict) else {}
    return {k: data[k] if isinstance(data.get(k), dict) else {} for k in ("verified", "bad")}


def write_marker(folder: Path, ok: dict[str, tuple[str, str]] | None = None, bad: dict[str, str] | None = None,
                 forget: Iterable[str] = ()) -> None:
    """Update ``folder``'s record: files in ``ok`` (rel → (algo, digest)) matched their checksum (their
    size now is kept), files in ``bad`` (rel → why) did not, files in ``forget`` are dropped.

    Best effort: a directory that cannot be written (e.g. a read-only shared copy) keeps its old
    record, which only makes ``list`` and loading check less.
    """
    ok, bad = ok or {}, bad or {}
    if not (ok or bad or forget) or not folder.is_dir():
        return
    record = read_marker(folder)
    for rel in forget:
        record["verified"].pop(rel, None)
        record["bad"].pop(rel, None)
    for rel, (algo, digest) in ok.items():
        record["bad"].pop(rel, None)
        try:
            record["verified"][rel] = {"size": (folder / rel).stat().st_size, "algo": algo, "digest": digest}
        except OSError:
            record["verified"].pop(rel, None)
    for rel, why in bad.items():
        record["verified"].pop(rel, None)
        record["bad"][rel] = why
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{MARKER}.", suffix=".tmp", dir=folder)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(tmp, folder / MARKER)
    except OSError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)


def set_aside(folder: Path, rels: Iterable[str]) -> None:
    """Quarantine the files ``rels`` of ``folder`` (rename to ``NAME.bad``) and forget their record."""
    rels = [rel for rel in rels if (folder / rel).is_file()]
    for rel in rels:
        try:
            os.replace(folder / rel, quarantine_path(folder / rel))
        except OSError as e:
            raise UserError(f"{folder / rel} failed its checksum and cannot be set aside: {e.strerror or e} "
                            f"(delete it by hand and fetch again)") from None
    write_marker(folder, forget=rels)


def known_bad(spec: DatasetSpec, folder: Path) -> list[str]:
    """Cheap check (no hashing) for files of ``spec`` known to be bad, each described in words.

    Bad means: recorded as corrupt by ``verify``, a size that differs from the one recorded when it
    last matched its checksum, or a required file missing while a quarantined copy exists.
    """
    record = read_marker(folder)
    out = []
    for rel in sorted(known_digests(spec)):
        path = folder / rel
        if not path.is_file():
            continue
        if rel in record["bad"]:
            out.append(f"{path} ({record['bad'][rel]})")
        elif isinstance(seen := record["verified"].get(rel), dict) and path.stat().st_size != seen.get("size"):
            out.append(f"{path} ({path.stat().st_size} bytes, {seen.get('size')} when its checksum was verified)")
    if missing_files(spec, folder):
        out += [f"{q.name[:-len(QUARANTINE)]} failed verification and was set aside as {q}"
                for q in quarantined(spec, folder)]
    return out


def bad_error(spec: DatasetSpec, folder: Path, root: str | os.PathLike | None = None) -> UserError | None:
    """The one-line error for a dataset with files known to be bad (``known_bad``), or None."""
    if spec.embedded or not (bad := known_bad(spec, folder)):
        return None
    return UserError(
        f"dataset {spec.name!r} is bad: {'; '.join(bad)} "
        f"(run `{fetch_hint(spec.name, root, force=True)}`, or `plasticlab data verify {spec.name}` "
        f"after replacing them by hand)"
    )


def intact(path: Path, rf: RemoteFile) -> bool:
    """Whether ``path`` exists and matches ``rf``'s published checksum (if it has one)."""
    digest = published_digest(rf)
    return path.is_file() and (digest is None or file_digest(path, digest[0]) == digest[1])


def download(rf: RemoteFile, dest: Path, retry: str = "plasticlab data fetch") -> None:
    """Download ``rf`` to ``dest`` atomically, trying ``rf.url`` then each mirror.

    ``retry`` is the command named in the error message (after placing the file by hand).

    Raises:
        UserError: every URL failed (network error or checksum mismatch); nothing is left under
            ``dest`` (a copy whose checksum differs is kept as ``dest.bad``, see ``download_url``).
    """
    failures = []
    for url in (rf.url, *rf.mirrors):
        try:
            download_url(url, dest, published_digest(rf))
            quarantine_path(dest).unlink(missing_ok=True)  # a mismatching copy from an earlier URL
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

    A progress bar is shown when stderr is a terminal. On a checksum mismatch the temporary file is
    kept as ``dest`` + ``.bad`` (for inspection; no reader looks there); on any other failure it is removed.
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
            os.replace(tmp, quarantine_path(dest))
            raise ChecksumMismatch(
                f"{url}: {digest[0]} {h.hexdigest()} differs from the published {digest[1]} "
                f"(download corrupted or the source changed; set aside as {quarantine_path(dest).name})"
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

    A file in place that fails its checksum is quarantined (renamed to ``NAME.bad``) before anything
    is downloaded, so a failed fetch never leaves it under its name. On success the verification
    record (``MARKER``) is written and quarantined copies are deleted.

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
    known = known_digests(spec)
    corrupt = corrupt_files(spec, folder)
    if not force and not corrupt and not missing_files(spec, folder):
        return finish(spec, folder)
    set_aside(folder, corrupt)
    for rf in spec.remote:
        path = folder / rf.name
        if path.is_file() and rf.name not in known and not intact(path, rf):  # an archive placed by hand
            set_aside(folder, [rf.name])
        if force or not path.is_file():
            download(rf, path, retry=fetch_hint(name, root))
            if rf.name in known:
                write_marker(folder, ok={rf.name: known[rf.name]})
        if rf.extract:
            safe_extract(path, folder)
            path.unlink()
    if bad := corrupt_files(spec, folder, rels=spec.checksums):  # unpacked members; downloads were checked
        set_aside(folder, bad)
        files = "; ".join(f"{folder / rel} ({why}; set aside as {quarantine_path(folder / rel).name})"
                          for rel, why in bad.items())
        raise UserError(f"downloaded {name!r} but these unpacked files do not match their published checksums: "
                        f"{files} (the source changed; please report it)")
    if missing := missing_files(spec, folder):
        raise UserError(f"downloaded {name!r} but {', '.join(missing)} are still missing in {folder} "
                        f"(the source's layout changed; please report it)")
    return finish(spec, folder)


def finish(spec: DatasetSpec, folder: Path) -> Path:
    """Record every present checksummed file of ``spec`` as verified, delete quarantined copies."""
    write_marker(folder, ok={rel: d for rel, d in known_digests(spec).items() if (folder / rel).is_file()})
    for q in quarantined(spec, folder):
        try:
            q.unlink(missing_ok=True)
        except OSError:  # why: a leftover copy next to a verified file is harmless (not "bad")
            pass
    return folder


def verify(name: str, root: str | None = None) -> list[str]:
    """Re-check dataset ``name``: published checksums of the files present, then a full read.

    The checksum results are recorded in the directory's ``MARKER`` (best effort), so ``list`` and
    loading report a corrupt file as bad afterwards.

    Returns:
        One line per check, e.g. ``"ok  /data/mnist/train-images-idx3-ubyte.gz  md5 f68b…"``.

    Raises:
        UserError: files missing, a checksum mismatch or a quarantined file (names the files and the fix
            ``plasticlab data fetch NAME --force``), or contents that do not parse.
    """
    spec = get_spec(name)
    if spec.embedded:
        return [f"ok  {name}: bundled with a dependency, nothing to verify"]
    folder = dataset_dir(spec, root)
    known = known_digests(spec)
    corrupt = corrupt_files(spec, folder)
    good = {rel: d for rel, d in known.items() if rel not in corrupt and (folder / rel).is_file()}
    write_marker(folder, ok=good, bad=corrupt)
    missing = missing_files(spec, folder)
    problems = [f"{folder / rel} ({why})" for rel, why in corrupt.items()]
    if missing:
        problems += [f"{q.name[:-len(QUARANTINE)]} failed verification and was set aside as {q}"
                     for q in quarantined(spec, folder)]
    if problems:
        fix = fetch_hint(name, root, force=True)
        raise UserError(f"dataset {name!r} is corrupt: {'; '.join(problems)} (run `{fix}`)")
    if missing:
        raise missing_error(spec, folder, missing, root)
    lines = [f"ok  {folder / rel}  {algo} {digest}" for rel, (algo, digest) in good.items()]
    for item in spec.required:
        path = find_file(folder, item)
        if path is not None and path.relative_to(folder).as_posix() not in known:
            lines.append(f"--  {path}  no published checksum (checked by reading it below)")
    arr = spec.read(folder)
    lines.append(f"ok  {name}: read {len(arr.y_train)} train and {len(arr.y_test)} test examples of shape "
                 f"{tuple(arr.x_train.shape[1:])}, {arr.classes} classes")
    return lines


def list_rows(root: str | None = None) -> list[dict]:
    """One row per registered dataset: ``name``, ``status``, ``path`` (its directory; empty when
    embedded) and ``description``. ``status`` is ``embedded``, ``bad`` (``known_bad``: files recorded
    as corrupt, changed in size since verified, or missing with a quarantined copy), ``missing`` or
    ``present``. Hashes nothing: only ``verify`` reads the files."""
    rows = []
    for name in sorted(registry.DATASETS):
        spec = registry.DATASETS[name]
        folder = dataset_dir(spec, root)
        if spec.embedded:
            status = "embedded"
        elif known_bad(spec, folder):
            status = "bad"
        else:
            status = "missing" if missing_files(spec, folder) else "present"
        rows.append({"name": name, "status": status, "path": "" if spec.embedded else str(folder),
                     "description": spec.description})
    return rows
