"""Typed, validated run configuration.

A config is YAML (or a dict) with the sections of ``RunConfig``. Every key is checked: unknown
keys, wrong types and values outside a field's choices raise ``UserError`` with one line that
names the dotted key and what is allowed. Component sections (``tasks``, ``model``, ``method``)
select a registered dataclass by their tag (``family`` / ``name``) and are checked against it.

Ranges, one convention: a numeric field declares its allowed values in its dataclass field, as
``metadata=bounds(...)``, and ``build_section`` checks every field against it, for every config
dataclass (these sections, every registered method / model / family, the transfer target)::

    lr: float = field(default=1.0e-3, metadata=bounds(gt=0))              # lr > 0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999],
                               metadata=bounds(ge=0, lt=1, length=2))     # two values in [0, 1)

``ge`` / ``gt`` / ``le`` / ``lt`` bound a number, or every number of a list; null and strings (e.g.
``every: task``) pass. ``length`` / ``min_length`` bound a list's length. So a component writes no
range checks; its ``validate(key)`` keeps only the checks across fields. Every float key, with or
without a range, must be finite: NaN and ±inf are refused. A YAML file that repeats a key in one
mapping, or is not UTF-8 text, is refused too. Every error is a one-line ``UserError``.

Usage::

    cfg = load_config("configs/digits.yaml", overrides=["optim.lr=3e-4"])
    raw = to_dict(cfg)          # the fully resolved config, as written to config.yaml
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from plasticlab import registry
from plasticlab.registry import UserError


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message: one line, at most ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


RANGE = "range"
"""The ``field(metadata=...)`` key that holds a field's ``Range``."""


@dataclass(frozen=True)
class Range:
    """The allowed values of a config field (declared with ``bounds``, checked by ``build_section``)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    length: int | None = None
    """Lists: exactly this many items."""
    min_length: int | None = None
    """Lists: at least this many items."""

    def contains(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))

    def describe(self) -> str:
        """``in [0, 1)``, ``≥ 1``, ``> 0`` …"""
        lo = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else ""
        hi = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else ""
        if lo and hi:
            return f"in {lo}, {hi}"
        if lo:
            return f"{'≥' if lo[0] == '[' else '>'} {lo[1:]}"
        return f"{'≤' if hi[-1] == ']' else '<'} {hi[:-1]}" if hi else "any number"

    def check(self, value: Any, key: str) -> None:
        """Raise a one-line UserError naming ``key`` when ``value`` is outside this range."""
        if isinstance(value, list):
            if self.length is not None and len(value) != self.length:
                raise UserError(f"config: {key}: expected exactly {self.length} values, got {shown(value)}")
            if self.min_length is not None and len(value) < self.min_length:
                want = "a non-empty list" if self.min_length == 1 else f"at least {self.min_length} values"
                raise UserError(f"config: {key}: expected {want}, got {shown(value)}")
            for i, v in enumerate(value):
                self.check(v, f"{key}[{i}]")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not self.contains(value):
            raise UserError(f"config: {key}: must be {self.describe()}, got {shown(value)}")


def bounds(*, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           length: int | None = None, min_length: int | None = None) -> dict:
    """Field metadata declaring the allowed values: ``field(default=64, metadata=bounds(ge=1))``."""
    return {RANGE: Range(ge=ge, gt=gt, le=le, lt=lt, length=length, min_length=min_length)}


def range_of(f: dataclasses.Field) -> Range | None:
    """The ``Range`` a dataclass field declares, or None."""
    return f.metadata.get(RANGE)


def check_ranges(obj: Any, key: str) -> None:
    """Check every field of dataclass instance ``obj`` against its declared ``Range``."""
    for f in dataclasses.fields(obj):
        rng = range_of(f)
        if rng is not None:
            rng.check(getattr(obj, f.name), f"{key}.{f.name}" if key else f.name)


@dataclass
class DataConfig:
    """Which dataset, how much of it, and where its files are."""

    name: str = "digits"
    """Registered dataset name (``plasticlab data list``)."""
    samples_per_class: int | None = field(default=None, metadata=bounds(ge=1))
    """Training images per class (class-balanced subset drawn from the seed); null = all."""
    test_samples_per_class: int | None = field(default=None, metadata=bounds(ge=1))
    """Test images per class; null = all."""
    root: str | None = None
    """Data directory; null = ``$PLASTICLAB_DATA`` or ``~/.cache/plasticlab``."""
    normalize: bool = True
    """Standardise inputs with the training set's per-channel mean and std."""


@dataclass
class TransitionConfig:
    """How a gradual environment moves from task t−1 to task t."""

    length: float = field(default=2.0, metadata=bounds(ge=0))
    """k: the transition lasts k × epochs_per_task epochs."""
    step: float = field(default=0.5, metadata=bounds(gt=0, lt=1))
    """δ: α goes through δ, 2δ, …, 1−δ (1/δ must be a whole number); output-interpolation
    via-uniform: δ/2, δ, …, 1−δ/2, so each half moves the smoothing factor by δ."""
    mode: Literal["direct", "via-uniform"] = "direct"
    """Output interpolation path: direct blend, or old one-hot → uniform → new one-hot."""

    def validate(self, key: str) -> None:
        n = round(1.0 / self.step)
        if abs(n * self.step - 1.0) > 1e-6:
            raise UserError(f"config: {key}.step: {self.step} must be in (0, 1) with 1/step a whole number "
                            "(e.g. 0.5, 0.25, 0.1, 0.05)")


@dataclass
class EnvironmentConfig:
    """How tasks follow each other (DESIGN.md: environment)."""

    kind: Literal["abrupt", "input-interpolation", "output-interpolation", "task-sampling"] = "abrupt"
    epochs_per_task: float = field(default=10.0, metadata=bounds(gt=0))
    """E: epochs of pure training per task (fractions allowed; lengths are counted in steps)."""
    transition: TransitionConfig = field(default_factory=TransitionConfig)
    compute_matched: bool = True
    """Every task gets (1+k)·E epochs in all kinds, so abrupt and gradual runs use equal compute."""


@dataclass
class OptimConfig:
    """One optimiser, kept across tasks unless a method says otherwise."""

    name: Literal["sgd", "adam", "adamw", "upgd", "trac"] = "adam"
    """upgd: utility-based perturbed gradient descent (Elsayed & Mahmood 2024); trac: Adam wrapped
    by TRAC's parameter-free scaling (Muppidi et al. 2024). See plasticlab/engine/optim.py."""
    lr: float = field(default=1.0e-3, metadata=bounds(gt=0))
    batch_size: int = field(default=64, metadata=bounds(ge=1))
    weight_decay: float = field(default=0.0, metadata=bounds(ge=0))
    """Coupled L2 for sgd/adam/trac, decoupled for adamw and upgd (θ ← θ(1 − lr·wd))."""
    momentum: float = field(default=0.0, metadata=bounds(ge=0, lt=1))
    """SGD momentum."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata=bounds(ge=0, lt=1, length=2))
    """Adam's (β1, β2)."""
    eps: float = field(default=1.0e-8, metadata=bounds(gt=0))
    per_entry_step: bool | Literal["auto"] = "auto"
    """adam/adamw/trac: keep Adam's step count per entry, so entries a method re-initialises
    restart their bias correction (plasticlab.methods.entry_adam, as Dohare et al. do). 'auto' =
    on when a method of the run declares ``entry_step`` (the unit-reset methods), resolved when
    the run starts and recorded in config.yaml; false = torch's one step count per tensor."""
    upgd_beta_utility: float = field(default=0.999, metadata=bounds(ge=0, lt=1))
    """upgd: β of the running utility u ← βu + (1−β)(−g·θ)."""
    upgd_sigma: float = field(default=1.0e-3, metadata=bounds(ge=0))
    """upgd: std of the Gaussian perturbation ξ added to the gradient."""
    trac_betas: list[float] = field(default_factory=lambda: [0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999],
                                    metadata=bounds(ge=0, lt=1, min_length=1))
    """trac: the discount factors β_j of its scale tuners (one scale s_j each; θ = θ_ref + Σs_j·Δ)."""
    trac_s_init: float = field(default=1.0e-8, metadata=bounds(gt=0))
    """trac: s_prev, the scale numerator s_j = s_prev / erfi(1/√2) · erfi(σ_j / (√(2v_j) + ε))."""
    trac_eps: float = field(default=1.0e-8, metadata=bounds(gt=0))
    """trac: ε of the scale tuners."""


@dataclass
class DiagnosticsConfig:
    """Plasticity diagnostics measured on a fixed probe batch (docs/diagnostics.md)."""

    every: int | Literal["task", "never"] = field(default="task", metadata=bounds(ge=1))
    """'task' = at every task end; an int N = also every N optimiser steps; 'never' = off."""
    probe_size: int = field(default=1024, metadata=bounds(ge=1))
    """Probe examples drawn once from the seed out of the base training set."""
    frozen_tau: float = field(default=0.1, metadata=bounds(ge=0))
    """A unit is mutually frozen when its incoming and outgoing weights are all below
    frozen_tau × the layer's initialisation scale."""
    dormant_tau: float = field(default=0.1, metadata=bounds(ge=0))
    """ReDo's τ: a unit is dormant when its normalised mean |activation| ≤ dormant_tau."""
    sensitivity: Literal["auto", "exact", "projection"] = "auto"
    """Input sensitivity: exact Jacobian, random projections, or exact when outputs ≤ 64."""
    projections: int = field(default=8, metadata=bounds(ge=1))
    """Random projections per input for the projection estimate."""
    gradients: bool = True
    """Also report mean |grad| of frozen, sparse and all weights on the probe batch."""
    duplicate_eps: float = field(default=1e-3, metadata=bounds(ge=0, le=1))
    """ε of duplicate_fraction: a unit is a duplicate when the cosine similarity of its incoming
    weight vector (weights + bias) with another unit's of the same layer is ≥ 1 − duplicate_eps."""
    past_tasks: int = field(default=0, metadata=bounds(ge=0))
    """Forgetting: at each task end also measure up to N earlier tasks (all when t ≤ N, else N
    evenly spaced ones including task 0 and t − 1): past_task_acc, mean_past_acc. 0 = off."""
    sharpness: int = field(default=0, metadata=bounds(ge=0))
    """Power-iteration steps for the top Hessian eigenvalue of the probe-batch loss. 0 = off."""
    probe_steps: int = field(default=0, metadata=bounds(ge=0))
    """Plasticity probe: at each task end train a copy of the model, and a fresh initialisation,
    for N steps on an unseen task of the family: probe_acc, probe_fresh_acc, probe_gap. 0 = off."""
    online_every: int = field(default=0, metadata=bounds(ge=0))
    """Online plasticity: every N steps, 1 − loss after / loss before the update on its own batch,
    averaged over the task (online_plasticity in task_end rows). 0 = off."""


@dataclass
class AugmentConfig:
    """Training-batch augmentation (off by default; images (C, H, W) only)."""

    enabled: bool = False
    crop_padding: int = field(default=4, metadata=bounds(ge=0))
    """p: pad every side by p pixels, then crop back to H×W at a random offset (0 = no crop)."""
    flip: bool = True
    """Mirror each example left–right with probability ½."""
    padding_mode: Literal["constant", "reflect", "replicate"] = "constant"
    """How the padded border is filled: 0, a mirror of the image, or the edge pixel."""

    def validate(self, key: str) -> None:
        # why: kept for callers that build an AugmentConfig directly (tests/test_augment.py);
        # build_section checks the declared range before this runs
        check_ranges(self, key)


@dataclass
class EngineConfig:
    """How the run executes: device, precision, checkpoints. Speed knobs live here."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """bf16: forward and loss under bf16 autocast; weights, gradients, optimiser state stay fp32.
    auto: bf16 where the device has bf16 matrix units (CUDA ≥ 8.0, AVX-512-BF16/AMX CPUs), else
    fp32; resolved when the run starts and recorded in config.yaml."""
    compile: bool = False
    """torch.compile the training step: the whole step as one graph where the run allows it
    (Adam/AdamW, no per-step method hook), else forward + loss (docs/performance.md)."""
    channels_last: bool = False
    """Image models: conv weights and training batches in channels-last (NHWC) memory format
    (faster convolutions on tensor-core GPUs; same results up to float rounding)."""
    checkpoint_every: int = field(default=0, metadata=bounds(ge=0))
    """Also checkpoint every N optimiser steps (0 = only at task ends)."""
    eval_batch_size: int = field(default=4096, metadata=bounds(ge=1))
    threads: int | Literal["auto"] = field(default="auto", metadata=bounds(ge=0))
    """torch CPU threads. auto: 1 per run — small networks gain little from more, a sweep never
    oversubscribes the cores, and the numbers (which depend on the thread count) do not depend on
    the machine or the executor; resolved when the run starts and recorded in config.yaml.
    N: N threads (0 = torch's default, all cores: may oversubscribe)."""
    loggers: list[Literal["tensorboard", "wandb"]] = field(default_factory=list)
    """Also log rows to TensorBoard (RUN/tensorboard) and/or W&B (offline, under RUN/wandb);
    extras: ``pip install 'plasticlab[loggers]'``. metrics.jsonl is always written."""


@dataclass
class RunConfig:
    """A whole run. Sections mirror the data flow (DESIGN.md)."""

    seed: int = field(default=0, metadata=bounds(ge=0))
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


class _WrongType(UserError):
    """``value`` is not of the expected type (a union then tries its next member; any other
    UserError, e.g. a non-finite number, is the answer)."""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise UserError naming ``key``."""
    origin = typing.get_origin(tp)
    bad = _WrongType(f"config: {key}: expected {_type_name(tp)}, got {shown(value)}")
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
            except _WrongType:
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
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad
        try:
            number = float(value)
        except ValueError:
            raise bad from None
        except OverflowError:  # an int beyond float's range
            number = math.inf
        if not math.isfinite(number):
            raise UserError(f"config: {key}: expected a finite number, got {shown(value)}")
        return number
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
        raise UserError(f"config: {key}: expected a mapping of keys, got {shown(raw)}")
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
    check_ranges(obj, key)
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
    if not isinstance(name, str) or name not in table:
        raise UserError(f"config: {key}.{tag}: unknown {shown(name)} (allowed: {', '.join(sorted(table))})")
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
    if cfg.optim.per_entry_step is True and cfg.optim.name in ("sgd", "upgd"):
        raise UserError(f"config: optim.per_entry_step: only for adam/adamw/trac "
                        f"(set it to auto or false for {cfg.optim.name})")
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
        parsed = yaml.load(value, Loader=_UniqueKeyLoader) if value.strip() else ""
    except _DuplicateKey as e:
        raise UserError(f"--set {key.strip()}: the value repeats the key {shown(e.key)}") from None
    except (yaml.YAMLError, ValueError, RecursionError):
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


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key repeated in one mapping (PyYAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base`` may be overridden, by design
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: the base class reports it
                break
        return super().construct_mapping(node, deep=deep)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping or raise UserError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p} (check the path)")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UserError(f"config file {p}: cannot read it ({_one_line(e.strerror or e)})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"config file {p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "a config is a YAML text file") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as e:
        raise UserError(f"config file {p} line {e.line}: duplicate key {shown(e.key)} (first on line {e.first}); "
                        "give each key once") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or e
        raise UserError(f"config file {p}{where}: not valid YAML ({_one_line(problem)})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of > 4300 digits, nesting too deep
        raise UserError(f"config file {p}: not a usable YAML config ({_one_line(e) or type(e).__name__})") from None
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
