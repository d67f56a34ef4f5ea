"""Configuration and provenance section: the resolved base config, versions and commits, and per
group its run directories (relative links from the report) and the config keys that set it apart.

- **Base config**: a sweep's ``sweep.yaml`` (base inlined, grid, seeds); a run's ``config.yaml``; a
  collection's first run's ``config.yaml``.
- **Provenance**: the fields of the runs' ``provenance.json`` that say what produced them (``git``,
  ``plasticlab``, ``torch``, ``python``, ``platform``, ``device``, ``host``); when runs differ, every
  distinct value with how many runs have it.
- **Groups**: the dotted config keys (``seed`` excluded) whose values differ between the groups'
  resolved configs (first run with a config per group) — more than the grid keys when a grid value
  is a mapping (``method: {name: …}``) or changes defaults.

A portable report (``make_report(..., portable=True)``, ``dest=None`` here) names no host and gives
run directories as text relative to the collection's root instead of links relative to the report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from plasticlab.report.render import Link
from plasticlab.report.runs import Collection, flatten
from plasticlab.report.tables import Group, label

FIELDS = ("git", "plasticlab", "torch", "python", "platform", "device", "host")
MACHINE = ("host",)
"""Fields that name the machine rather than what produced the numbers: left out of a portable report."""


def base_config(col: Collection) -> tuple[str, str]:
    """(source file name, its text) of the configuration the runs share."""
    if col.kind == "sweep":
        path = col.path / "sweep.yaml"
    elif col.kind == "run":
        path = col.path / "config.yaml"
    else:
        first = next((r for r in col.runs if (r.path / "config.yaml").is_file()), None)
        if first is None:
            return "", ""
        path = first.path / "config.yaml"
    try:
        text = path.read_text()
    except OSError:
        return "", ""
    name = path.name if col.kind != "collection" else str(path.relative_to(col.path))
    return name, text


def provenance_rows(col: Collection, portable: bool = False) -> list[list[str]]:
    """One row per provenance field: its value, or each distinct value with its number of runs (portable:
    without ``MACHINE`` fields)."""
    provs = []
    for r in col.runs:
        try:
            p = json.loads((r.path / "provenance.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(p, dict):
            provs.append(p)
    rows = []
    for f in FIELDS:
        if portable and f in MACHINE:
            continue
        counts: dict[str, int] = {}
        for p in provs:
            if p.get(f) is not None:
                counts[str(p[f])] = counts.get(str(p[f]), 0) + 1
        if not counts:
            continue
        if len(counts) == 1:
            rows.append([f, next(iter(counts))])
        else:
            rows.append([f, "; ".join(f"{v} ({n} runs)" for v, n in counts.items())])
    return rows


def differing_keys(gs: list[Group]) -> tuple[list[str], list[dict]]:
    """Config keys whose values differ between groups, and each group's flat config."""
    flats = []
    for g in gs:
        cfg = next((r.config for r in g.runs if r.config), {})
        flats.append(flatten(cfg))
    text = lambda v: json.dumps(v, sort_keys=True, default=str)
    keys = sorted({k for f in flats for k in f} - {"seed"})
    return [k for k in keys if len({text(f.get(k)) for f in flats}) > 1], flats


def group_rows(gs: list[Group], dest: Path | None, root: Path | None = None) -> tuple[list[str], list[list]]:
    """Per group: its run directories (links relative to ``dest``; ``dest=None``: text relative to ``root``)
    and the config keys that set it apart."""
    keys, flats = differing_keys(gs)
    rows = []
    for g, flat in zip(gs, flats, strict=True):
        links: list = []
        for r in g.runs:
            if r.path.is_dir() and dest is None:
                inside = root is not None and r.path.is_relative_to(root) and r.path != root
                links.append(r.path.relative_to(root).as_posix() if inside else r.id)
            elif r.path.is_dir():
                links.append(Link(r.id, Path(os.path.relpath(r.path.resolve(), dest.resolve())).as_posix()))
            else:
                links.append(f"{r.id} (not started)")
        diff = ", ".join(f"{k}={label(flat.get(k))}" for k in keys) if len(gs) > 1 else "—"
        rows.append([g.name, links, diff or "—"])
    return ["group", "run directories", "config keys that differ between groups"], rows


def blocks(col: Collection, gs: list[Group], dest: Path | None) -> list[tuple]:
    """The section; ``dest=None``: portable (no host, run directories relative to the collection's root)."""
    out: list[tuple] = [("h2", "Configuration and provenance")]
    name, text = base_config(col)
    if text:
        out += [("p", f"Base configuration ({name}):"), ("code", text)]
    prov = provenance_rows(col, portable=dest is None)
    if prov:
        out.append(("table", ["provenance", "value"], prov))
    out.append(("table", *group_rows(gs, dest, col.path)))
    return out
