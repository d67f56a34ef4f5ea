"""The transfer config: pre-train on a source, intervene, fine-tune on a target with N images per class.

YAML (every key validated; unknown keys are errors)::

    source: configs/digits.yaml      # or an inline run config mapping (an ordinary `plasticlab run` config)
    target:
      name: digits                   # registered dataset
      samples_per_class: [5, 10, 50] # N: training images per class (null = the whole training set)
      test_samples_per_class: null
      steps: 300                     # optimiser steps of fine-tuning (or epochs:, exactly one of them)
      optim: {name: adam, lr: 1.0e-3, batch_size: 64}
    interventions: [none, reset-frozen, {name: shrink-perturb, shrink: 0.5}]
    seeds: [0, 1, 2]
    source_grid: {optim.weight_decay: [0.0, 1.0e-3]}   # optional: one pre-training per point × seed

A relative ``source`` path is read relative to the transfer config file's directory (or the
working directory for an inline mapping). ``seeds`` replace the source's ``seed`` (so the source
must not set one when ``seeds`` is given; without ``seeds`` the source's seed is the only seed).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from plasticlab import registry
from plasticlab.config import (
    AugmentConfig,
    OptimConfig,
    RunConfig,
    bounds,
    build_section,
    check_ranges,
    load_config,
    parse_override,
    read_yaml,
    set_dotted,
    to_dict,
)
from plasticlab.registry import UserError


def interventions() -> list[str]:
    """``none`` and every registered method that declares ``intervention`` (applied once, between
    pre-training and fine-tuning)."""
    return ["none", *sorted(n for n, cls in registry.METHODS.items() if getattr(cls, "intervention", False))]


SCHEDULE_KEYS = ("tasks", "when", "every")
"""Method keys that schedule a method inside a run; an intervention has exactly one application."""


@dataclass
class TargetConfig:
    """The target dataset and how the pre-trained model is fine-tuned on it."""

    name: str = "digits"
    """Registered dataset name (``plasticlab data list``)."""
    root: str | None = None
    """Data directory; null = ``$PLASTICLAB_DATA`` or ``~/.cache/plasticlab``."""
    samples_per_class: list[int | None] = field(default_factory=lambda: [5, 10, 50],
                                                metadata=bounds(ge=1, min_length=1))
    """N: training images *per class*, class-balanced, drawn from (seed, N); null = all of them."""
    test_samples_per_class: int | None = field(default=None, metadata=bounds(ge=1))
    """Test images per class (the same test set for every N); null = all."""
    normalize: bool = True
    """Standardise converted inputs with the target training pool's per-channel mean and std."""
    epochs: float | None = field(default=None, metadata=bounds(gt=0))
    """Fine-tuning length in passes over the N·C training images (steps grow with N)."""
    steps: int | None = field(default=None, metadata=bounds(ge=1))
    """Fine-tuning length in optimiser steps, equal for every N (set this or ``epochs``)."""
    head: Literal["auto", "new"] = "auto"
    """auto: keep the pre-trained output layer when the target has the source's class count, else a
    new one; new: always a freshly initialised output layer."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """A fresh optimiser for fine-tuning; the batch is min(batch_size, N·C) images."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self, key: str) -> None:
        if len(set(self.samples_per_class)) != len(self.samples_per_class):
            raise UserError(f"config: {key}.samples_per_class: values repeat ({self.samples_per_class})")
        if (self.epochs is None) == (self.steps is None):
            raise UserError(f"config: {key}: set exactly one of steps (optimiser steps, equal for every N) "
                            "or epochs (passes over the N·C images)")


@dataclass
class TransferConfig:
    """A whole transfer experiment (validated; ``source`` is a resolved ``RunConfig``)."""

    source: Any = None
    """An ordinary run config (mapping or path): pre-training is a normal run through the engine."""
    target: TargetConfig = field(default_factory=TargetConfig)
    interventions: list = field(default_factory=list)
    """Names or mappings (``{name: reset-frozen, tau: 0.05}``) of: none, reset-frozen, head-reset,
    shrink-perturb, full-reset; parsed into ``Intervention`` items."""
    seeds: list[int] | None = field(default=None, metadata=bounds(ge=0, min_length=1))
    """One pre-training per seed, reused by every intervention and N; null = [source.seed]."""
    source_grid: dict | None = None
    """Dotted source keys → lists of values (a sweep's ``grid``): one pre-training per grid point ×
    seed, each fine-tuned with the same target protocol; null = the source as is."""


@dataclass(frozen=True)
class SourcePoint:
    """One pre-training: a seed, its source_grid values and its resolved run config."""

    seed: int
    values: dict
    """source_grid key → value as written ({} without a grid)."""
    cfg: RunConfig
    dir: str
    """Its run directory under ``OUT/pretrain/``: ``seed{s}``, or the sweep run id with a grid."""


def source_points(cfg: TransferConfig) -> list[SourcePoint]:
    """Every pre-training, seed-major: each ``source_grid`` point (expanded as a sweep's grid) × seed.

    Raises:
        UserError: a grid that is not ``key: [values]``, or a point that is not a valid source.
    """
    if not cfg.source_grid:
        return [SourcePoint(s, {}, dataclasses.replace(cfg.source, seed=s), f"seed{s}") for s in cfg.seeds]
    from plasticlab.sweep.spec import load_sweep

    try:
        points = load_sweep({"base": to_dict(cfg.source), "grid": cfg.source_grid, "seeds": cfg.seeds}).points()
    except UserError as e:
        msg = re.sub(r"^sweep: grid(\[\d+\])?: ", r"\1: ", str(e))  # the sweep's own grid errors
        raise UserError(f"config: source_grid{msg if msg.startswith((':', '[')) else ': ' + msg}") from None
    return [SourcePoint(p.seed, p.values, load_config(p.config), p.id) for p in points]


@dataclass
class Intervention:
    """One intervention: its label in results, its method config (None for ``none``) and its spec."""

    label: str
    method: Any
    spec: dict
    """The mapping as written in the config (``{name: ..., options...}``)."""


def _interventions(raw: Any, key: str) -> list[Intervention]:
    """Parse the interventions list into uniquely labelled ``Intervention`` items."""
    allowed = ", ".join(interventions())
    if not isinstance(raw, list) or not raw:
        raise UserError(f"config: {key}: expected a non-empty list (allowed: {allowed})")
    out: list[Intervention] = []
    for i, item in enumerate(raw):
        sub = f"{key}[{i}]"
        spec = {"name": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or "name" not in spec:
            raise UserError(f"config: {sub}: expected a name or a mapping with 'name' (one of {allowed})")
        name = spec["name"]
        if name not in interventions():
            raise UserError(f"config: {sub}.name: {name!r} is not an intervention (allowed: {allowed})")
        for k in SCHEDULE_KEYS:
            if k in spec:
                raise UserError(f"config: {sub}.{k}: not used by transfer (an intervention is applied once, "
                                "between pre-training and fine-tuning); remove it")
        if name == "none":
            if len(spec) > 1:
                raise UserError(f"config: {sub}: intervention 'none' takes no options")
            out.append(Intervention("none", None, {"name": "none"}))
            continue
        method = build_section(registry.METHODS[name], spec, sub)
        out.append(Intervention(label_of(method, spec), method, dict(spec)))
    labels = [iv.label for iv in out]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise UserError(f"config: {key}: repeated intervention {', '.join(dup)} (give repeated ones different options)")
    return out


def label_of(method: Any, raw: dict) -> str:
    """``name`` or ``name(k=v,…)`` listing the options set in the config, in config order."""
    opts = [f"{k}={getattr(method, k)}" for k in raw if k != "name"]
    return f"{method.name}({','.join(opts)})" if opts else method.name


def _source(raw: Any, base_dir: Path, has_seeds: bool) -> RunConfig:
    if raw is None:
        raise UserError("config: source: missing (a run config mapping or a path to one)")
    if isinstance(raw, str):
        path = Path(raw)
        raw = read_yaml(path if path.is_absolute() else base_dir / path)
    if not isinstance(raw, dict):
        raise UserError("config: source: expected a run config mapping or a path to a YAML file")
    if has_seeds and "seed" in raw:
        raise UserError("config: source.seed: remove it; the top-level seeds: list gives the pre-training seeds")
    try:
        return load_config(raw)
    except UserError as e:
        raise UserError(str(e).replace("config: ", "config: source.", 1)) from None


def from_dict(raw: dict, base_dir: str | Path = ".") -> TransferConfig:
    """Validate a raw transfer mapping; relative ``source`` paths are read from ``base_dir``."""
    if not isinstance(raw, dict):
        raise UserError("transfer config: expected a mapping with source, target, interventions, seeds")
    names = [f.name for f in dataclasses.fields(TransferConfig)]
    for k in raw:
        if k not in names:
            raise UserError(f"config: unknown key '{k}' (allowed: {', '.join(names)})")
    seeds = raw.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise UserError(f"config: seeds: expected a non-empty list of integers, got {seeds!r}")
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise UserError(f"config: seeds: values repeat ({seeds})")
    source = _source(raw.get("source"), Path(base_dir), seeds is not None)
    target = build_section(TargetConfig, raw.get("target"), "target")
    interventions = _interventions(raw.get("interventions", ["none", "reset-frozen"]), "interventions")
    cfg = TransferConfig(source=source, target=target, interventions=interventions,
                         seeds=list(seeds) if seeds is not None else [source.seed], source_grid=raw.get("source_grid"))
    check_ranges(cfg, "")
    source_points(cfg)
    return cfg


def load_transfer_config(source: str | Path | dict, overrides: list[str] | None = None) -> TransferConfig:
    """Load a transfer config from a YAML path or mapping and apply ``a.b=v`` overrides.

    Overrides address the transfer file's keys, e.g. ``target.steps=100`` or
    ``source.optim.weight_decay=1e-3`` (a ``source`` file is read in first).
    """
    if isinstance(source, dict):
        raw, base = copy.deepcopy(source), Path(".")
    else:
        raw, base = read_yaml(source), Path(source).parent
    for text in overrides or []:
        key, value = parse_override(text)
        if key.startswith("source.") and isinstance(raw.get("source"), str):
            path = Path(raw["source"])
            raw["source"] = read_yaml(path if path.is_absolute() else base / path)  # why: override its keys
        set_dotted(raw, key, value)
    return from_dict(raw, base)


def to_plain(cfg: TransferConfig) -> dict:
    """The resolved transfer config as plain data (what the output's ``config.yaml`` holds)."""
    src = to_dict(cfg.source)
    src.pop("seed", None)
    target = dataclasses.asdict(cfg.target)
    items = [iv.spec["name"] if len(iv.spec) == 1 else dict(iv.spec) for iv in cfg.interventions]
    out = {"source": src, "target": target, "interventions": items, "seeds": list(cfg.seeds)}
    return {**out, "source_grid": cfg.source_grid} if cfg.source_grid else out


def dump_yaml(cfg: TransferConfig) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False)
