"""The run directory: resolved config, provenance, append-only metrics and the latest checkpoint.

Layout (DESIGN.md)::

    RUN/config.yaml        the fully resolved config
    RUN/provenance.json    versions, git revision, device, host, start/end time, status
    RUN/metrics.jsonl      one JSON object per line, append-only, flushed per row
    RUN/checkpoints/latest.pt   model, optimiser, method state, schedule position,
                                and the byte length of metrics.jsonl it matches

Every file is replaced atomically (temporary file + ``os.replace``). A resume truncates
``metrics.jsonl`` to the checkpoint's length, so a run killed at any point and resumed writes
exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

from plasticlab.registry import UserError

CHECKPOINT = "checkpoints/latest.pt"


class StorageError(UserError):
    """Writing a run's files failed (disk full, permissions, a vanished directory): one line."""


def storage_error(path: Path, e: OSError) -> StorageError:
    """One line naming the file, the OS's reason and what to do."""
    hint = "free some space" if e.errno == errno.ENOSPC else "check the directory and its permissions"
    return StorageError(f"cannot write {path}: {e.strerror or e} ({hint}; the last checkpoint is intact, "
                        "so --resume continues from it)")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: never half-written.

    Raises:
        StorageError: the write failed (the temporary file is removed; ``path`` is unchanged).
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, e) from None


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: str) -> dict:
    from plasticlab import __version__

    return {"plasticlab": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "git": git_revision(), "device": device,
            "host": socket.gethostname(), "start": now(), "end": None, "status": "running"}


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def update_provenance(run_dir: Path, **fields) -> None:
    p = Path(run_dir) / "provenance.json"
    prov = read_json(p) if p.exists() else {}
    prov.update(fields)
    write_json(p, prov)


class MetricsWriter:
    """Append JSON rows to ``metrics.jsonl``; flushed after every row (rows are per epoch) and
    fsynced by ``sync()`` before a checkpoint counts them."""

    def __init__(self, run_dir: Path, truncate_to: int | None = None):
        """``truncate_to``: cut the file back to the length a checkpoint counted (resume).

        Raises:
            UserError: the file is shorter than that (rows were lost: never padded).
        """
        self.path = path = Path(run_dir) / "metrics.jsonl"
        size = path.stat().st_size if path.exists() else 0
        if truncate_to is not None and size < truncate_to:
            raise UserError(f"{path}: {truncate_to - size} bytes of rows that its checkpoint counts are missing "
                            f"({size} of {truncate_to}; power loss, or a copy of a live run): restore the file, "
                            "or start the run again in a new directory")
        try:
            if truncate_to is not None and path.exists():
                with open(path, "r+b") as f:
                    f.truncate(truncate_to)
            self.f = open(path, "ab")
        except OSError as e:
            raise storage_error(path, e) from None

    def __call__(self, row: dict) -> None:
        try:
            self.f.write((json.dumps(row, allow_nan=True) + "\n").encode())
            self.f.flush()
        except OSError as e:
            raise storage_error(self.path, e) from None

    def sync(self) -> None:
        """Make every row written so far durable (before a checkpoint that counts them)."""
        try:
            os.fsync(self.f.fileno())
        except OSError as e:
            raise storage_error(self.path, e) from None

    def tell(self) -> int:
        return self.f.tell()

    def close(self) -> None:
        self.f.close()


def save_checkpoint(run_dir: Path, state: dict, metrics_bytes: int) -> None:
    """Write ``state`` (+ the metrics length it matches) atomically to checkpoints/latest.pt."""
    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(f".latest.pt.tmp{os.getpid()}")
    try:
        path.parent.mkdir(exist_ok=True)
        torch.save({**state, "metrics_bytes": metrics_bytes}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, e) from None


def load_checkpoint(run_dir: Path, map_location="cpu") -> dict | None:
    """The latest checkpoint, loaded safely (``weights_only=True``: no arbitrary pickle code)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=True)


def read_metrics(run_dir: Path, event: str | None = None) -> list[dict]:
    """Rows of ``metrics.jsonl`` (optionally only one event type); a torn last line is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event is None or row.get("event") == event:
            rows.append(row)
    return rows
