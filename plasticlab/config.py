"""Typed, validated run configuration.

A config is YAML (or a dict) with the sections of ``RunConfig``. Every key is checked: unknown
keys, wrong types and values outside a field's choices raise ``UserError`` with one line that
names the dotted key and what is allowed. Component sections (``tasks``, ``model``, ``method``)
select a registered dataclass by their tag (``family`` / ``name``) and are checked against it.

Usage::

    cfg = load_config("configs/mnist.yaml", overrides=["optim.lr=3e-4"])
    raw = to_dict(cfg)          # the fully resolved config, as written to config.yaml
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from plasticlab import registry
from plasticlab.registry import UserError


@dataclass
class DataConfig:
    """Which dataset, how much of it, and where its files are."""

    name: str = "digits"
    """Registered dataset name (``plasticlab data list``)."""
    samples_per_class: int | None = None
    """Training images per class (class-balanced subset drawn from the seed); null = all."""
    test_samples_per_class: int | None = None
    """Test images per class; null = all."""
    root: str | None = None
    """Data directory; null = ``$PLASTICLAB_DATA`` or ``~/.cache/plasticlab``."""
    normalize: bool = True
    """Standardise inputs with the training set's per-channel mean and std."""


@dataclass
class TransitionConfig:
    """How a gradual environment moves from task t−1 to task t."""

    length: float = 2.0
    """k: the transition lasts k × epochs_per_task epochs."""
    step: float = 0.5
    """δ: α goes through δ, 2δ, …, 1−δ (1/δ must be a whole number)."""
    mode: Literal["direct", "via-uniform"] = "direct"
    """Output interpolation path: direct blend, or old one-hot → uniform → new one-hot."""

    def validate(self, key: str) -> None:
        n = round(1.0 / self.step) if self.step > 0 else 0
        if not 0 < self.step < 1 or abs(n * self.step - 1.0) > 1e-6:
            raise UserError(f"config: {key}.step: {self.step} must be in (0, 1) with 1/step a whole number "
                            "(e.g. 0.5, 0.25, 0.1, 0.05)")
        if self.length < 0:
            raise UserError(f"config: {key}.length: must be ≥ 0")


@dataclass
class EnvironmentConfig:
    """How tasks follow each other (DESIGN.md: environment)."""

    kind: Literal["abrupt", "input-interpolation", "output-interpolation", "task-sampling"] = "abrupt"
    epochs_per_task: float = 10.0
    """E: epochs of pure training per task (fractions allowed; lengths are counted in steps)."""
    transition: TransitionConfig = field(default_factory=TransitionConfig)
    compute_matched: bool = True
    """Every task gets (1+k)·E epochs in all kinds, so abrupt and gradual runs use equal compute."""


@dataclass
class OptimConfig:
    """One optimiser, kept across tasks unless a method says otherwise."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 1.0e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    """Coupled L2 for sgd/adam, decoupled for adamw."""
    momentum: float = 0.0
    """SGD momentum."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1.0e-8
    per_entry_step: bool = False
    """adam/adamw only: keep Adam's step count per entry, so entries a method re-initialises
    restart their bias correction (plasticlab.methods.entry_adam, as Dohare et al. do)."""


@dataclass
class DiagnosticsConfig:
    """Plasticity diagnostics measured on a fixed probe batch (docs/diagnostics.md)."""

    every: int | Literal["task", "never"] = "task"
    """'task' = at every task end; an int N = also every N optimiser steps; 'never' = off."""
    probe_size: int = 1024
    """Probe examples drawn once from the seed out of the base training set."""
    frozen_tau: float = 0.1
    """A unit is mutually frozen when its incoming and outgoing weights are all below
    frozen_tau × the layer's initialisation scale."""
    dormant_tau: float = 0.1
    """ReDo's τ: a unit is dormant when its normalised mean |activation| ≤ dormant_tau."""
    sensitivity: Literal["auto", "exact", "projection"] = "auto"
    """Input sensitivity: exact Jacobian, random projections, or exact when outputs ≤ 64."""
    projections: int = 8
    """Random projections per input for the projection estimate."""
    gradients: bool = True
    """Also report mean |grad| of frozen, sparse and all weights on the probe batch."""


@dataclass
class AugmentConfig:
    """Training-batch augmentation (off by default; images (C, H, W) only)."""

    enabled: bool = False
    crop_padding: int = 4
    """p: pad every side by p pixels, then crop back to H×W at a random offset (0 = no crop)."""
    flip: bool = True
    """Mirror each example left–right with probability ½."""
    padding_mode: Literal["constant", "reflect", "replicate"] = "constant"
    """How the padded border is filled: 0, a mirror of the image, or the edge pixel."""

    def validate(self, key: str) -> None:
        if self.crop_padding < 0:
            raise UserError(f"config: {key}.crop_padding: must be ≥ 0")


@dataclass
class EngineConfig:
    """How the run executes: device, precision, checkpoints. Speed knobs live here."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: forward and loss under bf16 autocast; weights, gradients, optimiser state stay fp32."""
    compile: bool = False
    """torch.compile the training step: the whole step as one graph where the run allows it
    (Adam/AdamW, no per-step method hook), else forward + loss (docs/performance.md)."""
    channels_last: bool = False
    """Image models: conv weights and training batches in channels-last (NHWC) memory format
    (faster convolutions on tensor-core GPUs; same results up to float rounding)."""
    checkpoint_every: int = 0
    """Also checkpoint every N optimiser steps (0 = only at task ends)."""
    eval_batch_size: int = 4096
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    loggers: list[Literal["tensorboard", "wandb"]] = field(default_factory=list)
    """Also log rows to TensorBoard (RUN/tensorboard) and/or W&B (offline, under RUN/wandb);
    extras: ``pip install 'plasticlab[loggers]'``. metrics.jsonl is always written."""


@dataclass
class RunConfig:
    """A whole run. Sections mirror the data flow (DESIGN.md)."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    tasks: Any = None
    """A registered task family's dataclass, selected by ``family``."""
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    model: Any = None
    """A registered model's dataclass, selected by ``name``."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: list = field(default_factory=list)
    """Mitigations in the order they run; ``{name: none}`` = empty list."""
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


# Component sections: config key -> (registry table, tag key, default component).
_TAGGED = {"tasks": (registry.FAMILIES, "family", "random-labels"), "model": (registry.MODELS, "name", "mlp")}
"""The defaults of every key are the dataclasses' field defaults (and, for a component section
without its tag, the default component's); there is no second table of defaults. The built-in
default run: 10 random-label tasks of ``digits``, 10 epochs each, MLP 256×4, Adam."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise UserError naming ``key``."""
    origin = typing.get_origin(tp)
    bad = UserError(f"config: {key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, key)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise bad
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):
            try:
                return _coerce(value, arg, key)
            except UserError:
                continue
        raise bad
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise bad
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def build_section(cls: type, raw: Any, key: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``, checking every key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config: {key}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in raw:
        if k not in names:
            where = f"{key}." if key else ""
            raise UserError(f"config: unknown key '{where}{k}' (allowed: {', '.join(names)})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            sub = f"{key}.{f.name}" if key else f.name
            kwargs[f.name] = _build_field(f.name, hints[f.name], raw[f.name], sub, cls)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(key)
    return obj


def _build_field(name: str, tp: Any, value: Any, key: str, owner: type) -> Any:
    if owner is RunConfig and name in _TAGGED:
        table, tag, default = _TAGGED[name]
        if value is None or isinstance(value, dict) and tag not in value:
            value = {tag: default, **(value or {})}
        return _build_tagged(table, tag, value, key)
    if owner is RunConfig and name == "method":
        return _build_methods(value, key)
    return _coerce(value, tp, key)


def _build_tagged(table: dict, tag: str, raw: Any, key: str) -> Any:
    if not isinstance(raw, dict) or tag not in raw:
        raise UserError(f"config: {key}: expected a mapping with '{tag}' (one of {', '.join(sorted(table))})")
    name = raw[tag]
    if name not in table:
        raise UserError(f"config: {key}.{tag}: unknown {name!r} (allowed: {', '.join(sorted(table))})")
    return build_section(table[name], raw, key)


def _build_methods(raw: Any, key: str) -> list:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        sub = f"{key}[{i}]" if isinstance(raw, list) else key
        if isinstance(item, dict) and item.get("name") == "none":
            if len(item) > 1:
                raise UserError(f"config: {sub}: method 'none' takes no options")
            continue
        out.append(_build_tagged(registry.METHODS | {"none": None}, "name", item, sub))
    return out


def from_dict(raw: dict) -> RunConfig:
    """Validate a raw config mapping (missing keys take the dataclasses' defaults)."""
    merged = dict(raw or {})
    for name in _TAGGED:
        merged.setdefault(name, None)
    cfg = build_section(RunConfig, merged, "")
    validate_run(cfg)
    return cfg


def validate_run(cfg: RunConfig) -> None:
    """Cross-section checks that a single section cannot make."""
    if cfg.optim.batch_size < 1:
        raise UserError("config: optim.batch_size: must be ≥ 1")
    if cfg.optim.per_entry_step and cfg.optim.name == "sgd":
        raise UserError("config: optim.per_entry_step: only for adam/adamw (set it to false for sgd)")
    if cfg.optim.lr <= 0:
        raise UserError("config: optim.lr: must be > 0")
    if cfg.environment.epochs_per_task <= 0:
        raise UserError("config: environment.epochs_per_task: must be > 0")
    models = getattr(cfg.tasks, "models", None)
    if models is not None and cfg.model.name not in models:
        raise UserError(f"config: model.name={cfg.model.name} does not fit tasks.family={cfg.tasks.family} "
                        f"(models that fit: {', '.join(models)})")
    kinds = getattr(cfg.tasks, "kinds", ())
    if cfg.environment.kind not in kinds:
        raise UserError(
            f"config: environment.kind={cfg.environment.kind} does not fit tasks.family={cfg.tasks.family} "
            f"(kinds that fit: {', '.join(kinds)})"
        )


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=v`` into ``("a.b", v)``; ``v`` is parsed as YAML (numbers, lists, null…)."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optim.lr=3e-4")
    key, _, value = text.partition("=")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def set_dotted(raw: dict, key: str, value: Any) -> None:
    """Set ``raw[a][b] = value`` for ``key = "a.b"``, creating mappings on the way.

    Changing a component's tag (``model.name``, ``tasks.family``, ``method.name``) replaces its
    section with ``{tag: value}``, so the old component's options do not leak into the new one.
    """
    parts = key.split(".")
    tags = {name: tag for name, (_, tag, _) in _TAGGED.items()} | {"method": "name"}
    if len(parts) == 2 and tags.get(parts[0]) == parts[1]:
        section = raw.get(parts[0])
        if not isinstance(section, dict) or section.get(parts[1]) != value:
            raw[parts[0]] = {parts[1]: value}
        return
    node = raw
    for i, p in enumerate(parts[:-1]):
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping or raise UserError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p} (check the path)")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"config file {p}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config file {p}: expected a mapping of sections at the top level")
    return raw


def load_config(source: str | Path | dict | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a config from a YAML path, a dict or None (the built-in default), apply overrides.

    Args:
        source: YAML file path, raw mapping, or None for the built-in default run.
        overrides: ``a.b=v`` strings applied in order before validation.
    """
    raw = {} if source is None else copy.deepcopy(source) if isinstance(source, dict) else read_yaml(source)
    raw = _resolve_base(raw)
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(raw, key, value)
    return from_dict(raw)


def _resolve_base(raw: dict) -> dict:
    return raw


def to_dict(cfg: RunConfig) -> dict:
    """The fully resolved config as plain data (what ``config.yaml`` holds)."""
    out = dataclasses.asdict(cfg)
    methods = [dataclasses.asdict(m) for m in cfg.method]
    out["method"] = {"name": "none"} if not methods else methods[0] if len(methods) == 1 else methods
    return _plain(out)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if not k.endswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


RESUME_SAFE = ("engine.device", "engine.threads", "engine.loggers", "engine.checkpoint_every")
"""Config keys that ``--resume`` may change: where the run executes, how it logs and checkpoints —
not what it computes (another device or thread count can still round differently)."""


def flat(raw: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists stay values)."""
    out = {}
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def resume_changes(old: RunConfig, new: RunConfig) -> dict:
    """The keys whose value differs between a run's config and the one asked for on resume.

    Returns ``{key: [old, new]}`` of the changed keys, all in ``RESUME_SAFE``.
    Raises:
        UserError: a changed key is not safe to change on resume (named, with the fix).
    """
    a, b = flat(to_dict(old)), flat(to_dict(new))
    changed = {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    bad = [k for k in changed if k not in RESUME_SAFE]
    if bad:
        raise UserError(f"--resume cannot change {', '.join(bad)} (the run was made with other values; "
                        f"start a new run, or change only {', '.join(RESUME_SAFE)})")
    return changed


def config_hash(cfg: RunConfig) -> str:
    """Stable 12-hex-digit hash of the resolved config (sweeps use it as a run id)."""
    text = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
