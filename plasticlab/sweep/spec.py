"""Sweep files: parse, validate and expand ``base`` × ``grid`` × ``seeds`` into run configs.

A sweep file (YAML, or the same as a mapping)::

    base: ../digits.yaml              # a config mapping, or a path (relative to the sweep file)
    grid:                             # dotted key → list of values; the product is taken
      optim.lr: [1.0e-3, 1.0e-4]
      method: [{name: none}, {name: l2, coef: 1.0e-3}]
    seeds: [0, 1, 2]                  # expands too (default: the base config's seed)
    slurm: {partition: gpu, time: 240}  # optional: --executor slurm options (plasticlab.sweep.slurm)

``grid`` may also be a list of such mappings: the sweep is then the union of each mapping's product,
in order (scikit-learn's ``ParameterGrid`` convention), e.g. ``[{environment.kind: [abrupt], method:
[…]}, {environment.kind: [task-sampling]}]``. A point has values only for its own mapping's keys (the
others keep the base's value; reports show ``—``); the keys of the sweep are the union, in order of
first appearance. A plain mapping is the list of that one mapping (same points, ids and configs).

Each grid point × seed is validated as a full config. Its id is a readable prefix of the grid
values and the seed, then ``config_hash`` of the resolved config (12 hex digits), e.g.
``lr=0.001_method=l2-coef=0.001-s0-3f2a9c01b7de``: stable across machines and re-runs,
distinct for distinct configs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plasticlab.config import config_hash, load_config, read_yaml, set_dotted, to_dict
from plasticlab.registry import UserError
from plasticlab.sweep.slurm import check_options

SWEEP_KEYS = ("base", "grid", "seeds", "slurm")
PREFIX_CHARS = 60
"""Longest readable prefix of a run id (the hash keeps ids distinct when prefixes are cut)."""


@dataclass(frozen=True)
class Point:
    """One run of a sweep: a grid point and a seed."""

    id: str
    seed: int
    values: dict[str, Any]
    """Grid key → value as written in the sweep file."""
    config: dict
    """The fully resolved config (``config.to_dict``)."""


@dataclass
class Sweep:
    base: dict
    grid: dict[str, list] | list[dict[str, list]]
    """As written: one mapping (the product of its values) or a list of mappings (the union of their products)."""
    seeds: list[int]
    name: str
    slurm: dict = field(default_factory=dict)
    """Options of ``--executor slurm`` (checked; they never change a run's config or id)."""

    def as_dict(self) -> dict:
        """The self-contained sweep (base inlined), as written to ``SWEEP_DIR/sweep.yaml``."""
        out = {"base": self.base, "grid": self.grid, "seeds": self.seeds}
        return {**out, "slurm": self.slurm} if self.slurm else out

    def points(self) -> list[Point]:
        """Every (seed, grid point), seed-major so a partial sweep covers all grid points early.

        Raises:
            UserError: a point is not a valid config, or two points resolve to the same config.
        """
        out: list[Point] = []
        seen: dict[str, dict] = {}
        for seed in self.seeds:
            for values in grid_points(self.grid):
                raw = apply(self.base, values, seed)
                try:
                    cfg = load_config(raw)
                except UserError as e:
                    raise UserError(f"sweep point {describe(values)} seed {seed}: {e}") from None
                h = config_hash(cfg)
                if h in seen:
                    raise UserError(
                        f"sweep: grid points {describe(seen[h])} and {describe(values)} give the same config "
                        "(remove the duplicate value)"
                    )
                seen[h] = values
                out.append(Point(run_id(values, seed, h), seed, values, to_dict(cfg)))
        return out


def mappings(grid: dict | list | None) -> list[dict[str, list]]:
    """The grid as a list of mappings (a plain mapping is a list of one; no grid: one empty mapping)."""
    if isinstance(grid, list):
        return grid or [{}]
    return [grid or {}]


def grid_points(grid: dict | list | None) -> list[dict[str, Any]]:
    """Every grid point (key → value) in order: per mapping, the product of its values (last key fastest)."""
    out = []
    for m in mappings(grid):
        keys = list(m)
        out += [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(m[k] for k in keys))]
    return out


def grid_keys(grid: dict | list | None) -> list[str]:
    """The grid's keys: the union of its mappings' keys in order of first appearance."""
    return list(dict.fromkeys(k for m in mappings(grid) for k in m))


def apply(base: dict, values: dict[str, Any], seed: int) -> dict:
    """``base`` with each dotted grid key set and ``seed`` set (a missing section starts from its default)."""
    raw = copy.deepcopy(base)
    for key, value in values.items():
        set_dotted(raw, key, copy.deepcopy(value))
    raw["seed"] = seed
    return raw


def text(value: Any) -> str:
    """Short text of a grid value: scalars as written, ``tag(k=v)`` for a tagged mapping."""
    if isinstance(value, dict):
        tag = next((k for k in ("name", "family", "kind") if k in value), None)
        rest = ",".join(f"{k}={text(v)}" for k, v in value.items() if k != tag)
        if tag is None:
            return "{" + rest + "}"
        return f"{value[tag]}({rest})" if rest else str(value[tag])
    if isinstance(value, list):
        return "[" + ",".join(text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(values: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={text(v)}" for k, v in values.items()) + "}"


def run_id(values: dict[str, Any], seed: int, digest: str) -> str:
    """``<key=value_…>-s<seed>-<config hash>``; keys shortened to their last part, unsafe chars → ``-``."""
    prefix = "_".join(f"{k.split('.')[-1]}={text(v)}" for k, v in values.items())
    prefix = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9._=+-]", "-", prefix)).strip("-")[:PREFIX_CHARS].rstrip("-_")
    return f"{prefix}-s{seed}-{digest}" if prefix else f"s{seed}-{digest}"


def load_sweep(source: str | Path | dict | Sweep) -> Sweep:
    """Read and check a sweep file (path) or mapping.

    Raises:
        UserError: unknown top-level keys, a grid that is not ``key: [values]``, bad seeds.
    """
    if isinstance(source, Sweep):
        return source
    if isinstance(source, dict):
        raw, where, folder, name = source, "sweep", Path.cwd(), None
    else:
        path = Path(source)
        raw, where, folder, name = read_yaml(path), f"sweep file {path}", path.parent, path.stem
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(SWEEP_KEYS)})")
    base = raw.get("base") or {}
    if isinstance(base, (str, Path)):
        p = Path(base)
        base = read_yaml(p if p.is_absolute() else folder / p)
    if not isinstance(base, dict):
        raise UserError(f"{where}: base: expected a config mapping or the path of a config file")
    grid = raw.get("grid") or {}
    if isinstance(grid, list):
        for i, m in enumerate(grid):
            if not isinstance(m, dict):
                raise UserError(f"{where}: grid: expected a mapping of dotted key → list of values, or a list of "
                                f"such mappings; grid[{i}] is {m!r}")
            _check_grid(m, f"{where}: grid[{i}]")
    elif isinstance(grid, dict):
        _check_grid(grid, f"{where}: grid")
    else:
        raise UserError(f"{where}: grid: expected a mapping of dotted key → list of values, or a list of such mappings")
    seeds = raw.get("seeds", [base.get("seed", 0)])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise UserError(f"{where}: seeds: expected a non-empty list of integers, e.g. [0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{where}: seeds: {seeds} repeats a seed")
    sweep = Sweep(base, grid, list(seeds), name or "", check_options(raw.get("slurm"), f"{where}: slurm"))
    if not sweep.name:
        runs = {"base": base, "grid": grid, "seeds": sweep.seeds}  # why: slurm options must not move the directory
        digest = hashlib.sha256(json.dumps(runs, sort_keys=True, default=str).encode()).hexdigest()
        sweep.name = f"sweep-{digest[:8]}"
    return sweep


def _check_grid(grid: dict, where: str) -> None:
    """One grid mapping: dotted keys (not ``seed``) → non-empty lists of values."""
    for key, values in grid.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{where}: keys must be dotted config keys such as optim.lr, got {key!r}")
        if key == "seed":
            raise UserError(f"{where}: put seeds under 'seeds: [...]', not in the grid")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: {key}: expected a non-empty list of values, got {values!r}")
