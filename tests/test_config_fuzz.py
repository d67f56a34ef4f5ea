"""Schema-driven fuzz: every bad input is a one-line UserError that names its key.

The keys come from the schema itself: the fields of RunConfig's sections and of every component
in ``registry.FAMILIES``, ``MODELS`` and ``METHODS`` (so a component added later is covered), plus
the transfer ``TargetConfig``. The bad values come from each key's declared type and ``Range``
(``plasticlab.config.bounds``): wrong types, NaN/±inf, values just outside the range, lists of the
wrong length, values outside a Literal. A few of them also go through the CLI as a user runs it.
"""

import copy
import dataclasses
import math
import os
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest

from plasticlab import registry
from plasticlab.config import RunConfig, check_ranges, load_config, range_of, read_yaml
from plasticlab.registry import UserError

ROOT = Path(__file__).resolve().parents[1]
TAGS = {"tasks": (registry.FAMILIES, "family"), "model": (registry.MODELS, "name"),
        "method": (registry.METHODS, "name")}
REQUIRED = {("model", "custom"): {"factory": "tests.user_code:make_mlp"},
            ("tasks", "custom"): {"factory": "tests.user_code:FirstHalf"}}
"""Options of a component that have no usable default (user code: tests/user_code.py)."""


# ---------------------------------------------------------------- the schema, walked


@dataclasses.dataclass
class Leaf:
    key: str  # dotted key, e.g. "optim.lr" or "method.tau"
    path: tuple  # where the value goes in the raw config
    tp: Any  # declared type
    field: dataclasses.Field
    owner: type
    base: dict  # a valid raw config for this key's component
    loader: str = "run"  # "run" (load_config) or "transfer" (transfer.config.from_dict)


def _fits(raw: dict) -> bool:
    try:
        load_config(raw)
    except UserError:
        return False
    return True


def _base_for(section: str, name: str) -> dict:
    """A valid raw run config that selects component ``name`` in ``section`` (partners found by trying)."""
    tag = TAGS[section][1]
    raw = {section: {tag: name, **REQUIRED.get((section, name), {})}}
    if section == "tasks":
        cls = registry.FAMILIES[name]
        raw["environment"] = {"kind": cls.kinds[0]}
        if getattr(cls, "models", None):
            raw["model"] = {"name": cls.models[0]}
        return raw
    if _fits(raw):
        return raw
    for family, cls in registry.FAMILIES.items():  # a model that needs another family (t5 → language)
        candidate = {**raw, "tasks": {"family": family}, "environment": {"kind": cls.kinds[0]}}
        if _fits(candidate):
            return candidate
    raise AssertionError(f"no valid config selects {section}.{tag}={name}")


def _walk(cls: type, prefix: tuple, base: dict, skip: str | None = None, loader: str = "run"):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == skip:
            continue
        path = (*prefix, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield Leaf(".".join(path), path, tp, f, cls, base, loader)  # the section itself
            yield from _walk(tp, path, base, loader=loader)
        else:
            yield Leaf(".".join(path), path, tp, f, cls, base, loader)


def schema_leaves() -> list[Leaf]:
    leaves = [leaf for leaf in _walk(RunConfig, (), {}) if leaf.path[0] not in TAGS]
    for section, (table, tag) in TAGS.items():
        for name, cls in sorted(table.items()):
            base = _base_for(section, name)
            leaves += [dataclasses.replace(leaf, key=f"{leaf.key}@{name}") for leaf in
                       _walk(cls, (section,), base, skip=tag)]
    from plasticlab.transfer.config import TargetConfig

    leaves += list(_walk(TargetConfig, ("target",), TRANSFER_BASE, loader="transfer"))
    return leaves


TRANSFER_BASE = {"source": {"tasks": {"family": "permuted-pixels", "count": 1},
                            "model": {"name": "mlp", "hidden": [8]}},
                 "target": {"name": "digits", "steps": 5}, "interventions": ["none"]}


# ---------------------------------------------------------------- bad values from type and range

NAN, INF = float("nan"), float("inf")


def _members(tp: Any) -> list:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def _outside(rng, is_float: bool) -> list:
    """Numbers just outside ``rng`` (and on an excluded boundary)."""
    step = 0.5 if is_float else 1
    vals = []
    if rng.ge is not None:
        vals.append(rng.ge - step)
    if rng.gt is not None:
        vals += [rng.gt, rng.gt - step]
    if rng.le is not None:
        vals.append(rng.le + step)
    if rng.lt is not None:
        vals.append(rng.lt)
    return [float(v) if is_float else int(v) for v in vals]


def _valid_item(item_tp: Any, rng, default: Any) -> Any:
    if isinstance(default, list) and default:
        return default[0]
    for m in _members(item_tp):
        if typing.get_origin(m) is Literal:
            return typing.get_args(m)[0]
        if m in (int, float):
            lo = rng.ge if rng and rng.ge is not None else (rng.gt + 1 if rng and rng.gt is not None else 0)
            return m(lo)
    raise AssertionError(f"no valid item of {item_tp}")


def bad_values(leaf: Leaf) -> list:
    """Values that the key's declared type and range both rule out."""
    if dataclasses.is_dataclass(leaf.tp):
        return ["x", 5, [1], NAN]
    ms = _members(leaf.tp)
    rng = range_of(leaf.field)
    lists = [m for m in ms if typing.get_origin(m) is list]
    lits = [v for m in ms if typing.get_origin(m) is Literal for v in typing.get_args(m)]
    default = leaf.field.default if leaf.field.default is not dataclasses.MISSING else leaf.field.default_factory()
    out: list = [NAN, INF, -INF, {"a": 1}, [{"a": 1}]]
    if str not in ms:
        out.append("not-a-value")
    if bool not in ms:
        out.append(True)
    if float not in ms and 2.5 not in lits:
        out.append(2.5)
    if not {int, float, bool} & set(ms) and 3 not in lits:
        out.append(3)
    if not lists:
        out.append([])
    if float in ms and str not in ms:
        out += ["nan", "-inf", 10**400]  # strings that parse to non-finite floats; an int beyond float
    if lits and all(isinstance(v, int) for v in lits) and int not in ms:
        out.append(max(lits) + 1)
    numeric = [m for m in ms if m in (int, float)]
    if rng is not None and numeric:
        out += _outside(rng, float in numeric)
    for lst in lists:
        (item_tp,) = typing.get_args(lst)
        item_ms = _members(item_tp)
        fill = _valid_item(item_tp, rng, default)
        out += [[NAN], [fill, {"a": 1}]]
        if str not in item_ms:
            out.append(["not-a-value"])
        item_numeric = [m for m in item_ms if m in (int, float)]
        if rng is not None and item_numeric:
            for v in _outside(rng, float in item_numeric):
                items = list(default) if isinstance(default, list) and default else [fill]
                items[0] = v
                out.append(items)
        if rng is not None and rng.length is not None:
            out += [[fill] * (rng.length - 1), [fill] * (rng.length + 1)]
        if rng is not None and rng.min_length:
            out += [[fill] * n for n in range(rng.min_length)]
    return out


def _with(base: dict, path: tuple, value: Any) -> dict:
    raw = copy.deepcopy(base)
    node = raw
    for p in path[:-1]:
        node = node.setdefault(p, {})
    node[path[-1]] = value
    return raw


def _load(leaf: Leaf, raw: dict) -> None:
    if leaf.loader == "transfer":
        from plasticlab.transfer.config import from_dict

        from_dict(raw)
    else:
        load_config(raw)


LEAVES = schema_leaves()


def test_the_walk_covers_every_section_and_component():
    keys = {leaf.key for leaf in LEAVES}
    assert {"seed", "optim.lr", "optim.betas", "environment.transition.step", "engine.threads",
            "diagnostics.every", "target.samples_per_class", "target.optim.lr"} <= keys
    for section, (table, _) in TAGS.items():
        for name, cls in table.items():
            options = [f for f in dataclasses.fields(cls) if f.name != TAGS[section][1]]
            assert not options or any(k.endswith(f"@{name}") for k in keys), f"{section} {name} not walked"


@pytest.mark.parametrize("leaf", LEAVES, ids=[leaf.key for leaf in LEAVES])
def test_every_bad_value_is_a_one_line_error_naming_the_key(leaf):
    _load(leaf, copy.deepcopy(leaf.base))  # the base is valid: an error below is the bad value's
    key = leaf.key.split("@")[0]
    failures = []
    for value in bad_values(leaf):
        try:
            _load(leaf, _with(leaf.base, leaf.path, value))
        except UserError as e:
            msg = str(e)
            if "\n" in msg or key not in msg:
                failures.append(f"{value!r:.60}: message {msg!r}")
        except Exception as e:  # noqa: BLE001 - anything else is the bug this test hunts
            failures.append(f"{value!r:.60}: {type(e).__name__}: {e}")
        else:
            failures.append(f"{value!r:.60}: accepted")
    assert not failures, f"{leaf.key}:\n" + "\n".join(failures)


def _is_numeric(tp: Any) -> bool:
    for m in _members(tp):
        if m in (int, float) or typing.get_origin(m) is list and _is_numeric(typing.get_args(m)[0]):
            return True
    return False


def test_every_numeric_key_declares_its_range_and_its_default_is_inside():
    missing = [leaf.key for leaf in LEAVES if _is_numeric(leaf.tp) and range_of(leaf.field) is None]
    assert not missing, f"declare metadata=bounds(...) on: {', '.join(missing)}"
    classes = {leaf.owner for leaf in LEAVES}
    for cls in classes:
        if cls is RunConfig:
            continue
        check_ranges(cls(), cls.__name__)  # defaults satisfy their own declarations


# ---------------------------------------------------------------- YAML files


def test_duplicate_yaml_keys_name_the_file_key_and_line(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("seed: 0\noptim:\n  lr: 0.1\n  batch_size: 8\n  lr: 0.2\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and "duplicate key 'lr'" in msg and "line 5" in msg and "line 3" in msg
    p.write_text("seed: 0\nseed: 1\n")
    with pytest.raises(UserError, match=r"line 2: duplicate key 'seed'"):
        read_yaml(p)
    p.write_text("base: &b {lr: 0.1}\nother:\n  <<: *b\n  lr: 0.2\n")  # a merge key may be overridden
    assert read_yaml(p)["other"] == {"lr": 0.2}
    with pytest.raises(UserError, match="repeats the key 'name'"):
        load_config(None, ["method={name: l2, name: redo}"])


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", b"seed: 0\n\x00\x01\x02",
                                     b"seed: 1" + b"1" * 5000])
def test_binary_or_unusable_config_file_is_one_line(tmp_path, content):
    p = tmp_path / "bad.yaml"
    p.write_bytes(content)
    with pytest.raises(UserError) as e:
        load_config(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_transfer_seeds_are_in_range():
    from plasticlab.transfer.config import from_dict

    with pytest.raises(UserError, match=r"config: seeds\[0\]: must be ≥ 0, got -1"):
        from_dict({**TRANSFER_BASE, "seeds": [-1]})


# ---------------------------------------------------------------- through the CLI

CLI_CASES = ["optim.lr=.nan", "optim.betas=[0.9]", "engine.threads=-1", "tasks.count=0"]


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "plasticlab", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("override", CLI_CASES)
def test_cli_bad_value_exits_2_with_one_line(tmp_path, override):
    out = tmp_path / "run"
    r = cli("run", "--set", override, "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert override.split("=")[0] in r.stderr
    assert not out.exists()


def test_cli_binary_config_file_exits_2_with_one_line(tmp_path):
    p = tmp_path / "model.pt"
    p.write_bytes(bytes(range(256)))
    r = cli("run", str(p), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
    assert "not UTF-8" in r.stderr and not (tmp_path / "run").exists()


def test_nan_is_refused_for_every_float_key_somewhere_in_the_walk():
    floats = [leaf for leaf in LEAVES if float in _members(leaf.tp)]
    assert len(floats) > 20
    for leaf in floats[:3]:
        with pytest.raises(UserError, match=f"{leaf.key.split('@')[0]}: expected a finite number, got nan"):
            _load(leaf, _with(leaf.base, leaf.path, math.nan))
