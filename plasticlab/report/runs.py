"""Read run directories and sweep directories into plain Python records.

A run directory holds ``config.yaml``, ``provenance.json`` (with ``status``) and
``metrics.jsonl`` (DESIGN.md). A sweep directory holds ``sweep.yaml``, ``runs.jsonl`` (one line
per planned run: id, path, seed, grid point) and the run directories. Any other directory whose
sub-directories are run directories is read as a collection: its group keys are the dotted config
keys whose values differ between runs (``seed`` excluded). A folder with a ``config.yaml`` whose
``provenance.json`` names another ``kind`` (a ``plasticlab transfer`` output: ``"kind": "transfer"``)
is not a run: a collection skips it and everything under it.

Reading is tolerant of work in progress: a half-written last line of ``metrics.jsonl`` or an
unreadable ``provenance.json`` is skipped, and a planned run without a directory is ``pending``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plasticlab.registry import UserError

FINISHED = ("done", "failed", "diverged")


@dataclass
class RunData:
    """One run as read from its directory."""

    id: str
    path: Path
    seed: int | None
    point: dict[str, Any]
    """Grid key → value for this run (the seed excluded)."""
    status: str
    """done | running | failed | diverged | pending (no directory or no provenance yet)."""
    config: dict = field(default_factory=dict)
    task_ends: dict[int, dict] = field(default_factory=dict)
    """task index → its last ``task_end`` record."""
    epochs: list[dict] = field(default_factory=list)

    @property
    def planned_tasks(self) -> int | None:
        count = (self.config.get("tasks") or {}).get("count")
        return count if isinstance(count, int) else None


@dataclass
class Collection:
    """Runs read from a run, sweep or collection directory."""

    kind: str
    """run | sweep | collection."""
    path: Path
    keys: list[str]
    """Grid keys that define the groups (seed excluded), in sweep order."""
    runs: list[RunData]

    @property
    def partial(self) -> bool:
        """True while some run is not finished (pending, running or interrupted)."""
        return any(r.status not in FINISHED for r in self.runs)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def is_run_dir(path: Path) -> bool:
    """A run directory: ``config.yaml``, and a ``provenance.json`` (if any) that names no other kind."""
    return (path / "config.yaml").is_file() and output_kind(path) == "run"


def output_kind(path: Path) -> str:
    """``kind`` of ``path/provenance.json`` (``transfer`` for a transfer output); ``run`` when it names none."""
    try:
        prov = json.loads((path / "provenance.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "run"  # why: a run being created (or a half-written file) is still a run
    kind = prov.get("kind", "run") if isinstance(prov, dict) else "run"
    return kind if isinstance(kind, str) and kind else "run"


def read_status(run_dir: Path) -> str:
    """The run's ``provenance.json`` status; ``pending`` without one, ``running`` if unreadable."""
    prov = run_dir / "provenance.json"
    if not prov.is_file():
        return "pending"
    try:
        return str(json.loads(prov.read_text()).get("status", "running"))
    except (json.JSONDecodeError, OSError):
        return "running"  # why: the writer may be mid-way through replacing the file


def read_metrics(run_dir: Path) -> tuple[dict[int, dict], list[dict]]:
    """``task_end`` records by task (last one wins) and ``epoch`` records; unknown events ignored."""
    task_ends: dict[int, dict] = {}
    epochs: list[dict] = []
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return task_ends, epochs
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # why: a running writer can leave a half-written last line
        if not isinstance(rec, dict):
            continue
        if rec.get("event") == "task_end" and isinstance(rec.get("task"), int):
            task_ends[rec["task"]] = rec
        elif rec.get("event") == "epoch":
            epochs.append(rec)
    return task_ends, epochs


def read_config(run_dir: Path) -> dict:
    try:
        raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def get_dotted(raw: dict, key: str) -> Any:
    """``raw[a][b]`` for ``key = "a.b"``; None when a part is missing."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def flatten(raw: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings → ``{"a.b": leaf}``; lists stay leaves."""
    if not isinstance(raw, dict):
        return {prefix: raw}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def load_run(path: Path, *, id: str | None = None, seed: int | None = None, point: dict | None = None) -> RunData:
    """Read one run directory (missing files give an empty, ``pending`` run)."""
    config = read_config(path) if path.is_dir() else {}
    task_ends, epochs = read_metrics(path) if path.is_dir() else ({}, [])
    if seed is None and isinstance(config.get("seed"), int):
        seed = config["seed"]
    return RunData(
        id=id or path.name,
        path=path,
        seed=seed,
        point=point or {},
        status=read_status(path) if path.is_dir() else "pending",
        config=config,
        task_ends=task_ends,
        epochs=epochs,
    )


def load(path: str | Path) -> Collection:
    """Read a run directory, a sweep directory or a directory of run directories."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"report: {root} is not a directory (give a run or sweep directory)")
    if (root / "config.yaml").is_file() and (kind := output_kind(root)) != "run":
        raise UserError(f"report: {root} is a {kind} output, not a run (its results are in results.csv and "
                        "table.txt); give a run or sweep directory")
    if is_run_dir(root):
        return Collection("run", root, [], [load_run(root)])
    index = root / "runs.jsonl"
    if (root / "sweep.yaml").is_file() and index.is_file():
        return _load_sweep(root, index)
    found = sorted(p.parent for p in root.rglob("config.yaml") if len(p.relative_to(root).parts) <= 3)
    others = [d for d in found if output_kind(d) != "run"]
    dirs = [d for d in found if d not in others and not any(d.is_relative_to(o) for o in others)]
    if not dirs:
        raise UserError(f"report: {root} holds no run (no run directory with a config.yaml); "
                        "give a run or sweep directory")
    runs = [load_run(d, id=str(d.relative_to(root))) for d in dirs]
    keys = _varying_keys([r.config for r in runs])
    for r in runs:
        r.point = {k: get_dotted(r.config, k) for k in keys}
    return Collection("collection", root, keys, runs)


def _load_sweep(root: Path, index: Path) -> Collection:
    entries = []
    for line in index.read_text().splitlines():
        if line.strip():
            entries.append(json.loads(line))
    keys: list[str] = []
    for e in entries:
        keys += [k for k in e.get("point", {}) if k not in keys]
    runs = [load_run(root / e["path"], id=e["id"], seed=e.get("seed"), point=e.get("point", {})) for e in entries]
    return Collection("sweep", root, keys, runs)


def _varying_keys(configs: list[dict]) -> list[str]:
    flats = [flatten(c) for c in configs]
    keys = sorted({k for f in flats for k in f} - {"seed"})
    # why: a value that is a list or mapping is compared by its JSON text
    text = lambda v: json.dumps(v, sort_keys=True)
    return [k for k in keys if len({text(f.get(k)) for f in flats}) > 1]
