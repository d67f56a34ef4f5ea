"""``run_transfer``: pre-train → intervene → fine-tune on N target images per class (Zilly et al. 2021).

For every seed s (docs/transfer.md), and with a ``source_grid`` for every grid point of it:

1. **Pre-train** once: the ``source`` config with seed s is an ordinary run through the engine,
   saved as ``OUT/pretrain/seed{s}/`` (config.yaml, metrics.jsonl, checkpoints/latest.pt; with a
   grid ``OUT/pretrain/<sweep run id>/``, and the rows carry the point's values under ``grid``).
2. For every intervention: load the pre-trained model (with its source head), apply the
   intervention (the registered method's task-boundary hook, as if the target were task 1),
   then give it the target's output layer (kept when the class counts match and
   ``target.head: auto``, else freshly initialised from (s, "transfer-head")).
3. For every N: fine-tune a copy of that model on N images per class of the converted target
   (``convert.py``) through the engine's loop, with a fresh optimiser, then measure the target
   test set.

Diagnostics are recorded at three stages: ``pretrained`` (the pre-training run's last
``task_end`` row: source probe, source head), ``intervened`` and ``finetuned`` (both on a fixed
probe of the converted target's training pool, the same for every N). Outputs:
``config.yaml``, ``provenance.json``, ``results.jsonl`` (one row per (seed, intervention, N)),
``results.csv``, ``curves.jsonl`` (fine-tuning epoch rows) and ``table.txt``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from plasticlab import diagnostics, unit_discovery, units
from plasticlab.api import run as run_source
from plasticlab.config import DataConfig, EnvironmentConfig, RunConfig, config_hash
from plasticlab.data.base import Dataset, class_balanced_indices, load_dataset
from plasticlab.engine import loop
from plasticlab.engine.build import build_model, pick_device
from plasticlab.envs import steps_per_epoch
from plasticlab.methods import MethodContext
from plasticlab.registry import UserError
from plasticlab.seeding import derived_seed
from plasticlab.store import atomic_write, load_checkpoint, provenance, read_json, read_metrics
from plasticlab.store.lifecycle import RunDirectory
from plasticlab.tasks.base import ClassificationFamily, Task, evaluate_classifier
from plasticlab.transfer.config import (
    Intervention,
    SourcePoint,
    TransferConfig,
    dump_yaml,
    load_transfer_config,
    source_points,
    to_plain,
)
from plasticlab.transfer.convert import channel_stats, check_convertible, standardise, to_source_shape
from plasticlab.transfer.table import format_tables

Log = Callable[[str], None]
STAGE_KEYS = diagnostics.METRICS


@dataclass
class TargetTask(ClassificationFamily):
    """The target as one fixed task: the converted N-per-class subset, as is (engine family)."""

    family: str = "transfer-target"
    count: int = 1
    kinds = ("abrupt",)

    def make_task(self, base, seed: int, t: int) -> Task:
        return Task(t, base.x_train, base.y_train, base.x_test, base.y_test)


@dataclass
class Source:
    """What fine-tuning needs to know about the pre-training: its config, shapes and class count."""

    cfg: RunConfig
    input_shape: tuple[int, ...]
    classes: int


@dataclass
class TargetPool:
    """The whole converted target training set, its test set and its diagnostics probe."""

    data: Dataset
    probe: torch.Tensor
    """Indices into ``data.x_train`` of the probe batch (the same for every N and intervention)."""


def source_info(cfg: RunConfig, device: torch.device) -> Source:
    """Build the source run once (no training) to learn its input shape and class count; checks the model."""
    s = loop.setup(cfg, device)
    model = s.model
    if not s.unit_map or unit_discovery.head_slices(model) is None:
        why = units.why_empty(model) if not s.unit_map else "its output is not one Linear's output"
        raise UserError(f"transfer: model {cfg.model.name!r} has no unit map or head ({why}); use mlp, cnn, vgg, "
                        "resnet18 or a model the automatic unit map can read (docs/models.md)")
    return Source(cfg, tuple(s.family.input_shape(s.base)), s.family.n_outputs(s.base))


def load_target(cfg: TransferConfig, src: Source, seed: int, device: torch.device) -> TargetPool:
    """The target training pool and test set, converted to the source's input shape and standardised.

    Raises:
        UserError: missing dataset, impossible channel conversion, or an N above a class's count.
    """
    t = cfg.target
    raw = load_dataset(t.name, root=t.root, samples_per_class=None, test_samples_per_class=t.test_samples_per_class,
                       normalize=False, seed=seed, device=device)
    check_convertible(tuple(raw.x_train.shape[1:]), src.input_shape, name=f"target {t.name!r}")
    x_tr, x_te = to_source_shape(raw.x_train, src.input_shape), to_source_shape(raw.x_test, src.input_shape)
    if t.normalize:
        stats = channel_stats(x_tr)
        x_tr, x_te = standardise(x_tr, stats), standardise(x_te, stats)
    counts = np.bincount(raw.y_train.cpu().numpy(), minlength=raw.classes)
    for n in t.samples_per_class:
        if n is not None and n > counts.min():
            raise UserError(f"config: target.samples_per_class: N={n} but class {int(counts.argmin())} of "
                            f"{t.name!r} has only {int(counts.min())} training images (lower N)")
    data = Dataset(x_tr, raw.y_train, x_te, raw.y_test, raw.classes)
    probe = diagnostics.probe_indices(derived_seed(seed, "transfer"), x_tr.shape[0], src.cfg.diagnostics.probe_size,
                                      device)
    return TargetPool(data, probe)


def subset(pool: TargetPool, n: int | None, seed: int) -> Dataset:
    """N training images per class (class-balanced, drawn from (seed, "transfer-samples", N)); all for None."""
    d = pool.data
    idx = class_balanced_indices(d.y_train.cpu().numpy(), n, derived_seed(seed, "transfer-samples", n),
                                 "target.samples_per_class")
    sel = torch.as_tensor(idx, device=d.x_train.device)
    return Dataset(d.x_train[sel], d.y_train[sel], d.x_test, d.y_test, d.classes)


def pretrained_model(src: Source, run_dir: Path, seed: int, device: torch.device) -> nn.Module:
    """The pre-trained model (source head) from the pre-training run's checkpoint."""
    state = load_checkpoint(run_dir, map_location=device)
    model = build_model(src.cfg, src.input_shape, src.classes, seed, device)
    model.load_state_dict(state["model"])
    return model


def apply_intervention(iv: Intervention, model: nn.Module, *, seed: int, fresh_model: Callable[[int], nn.Module],
                       device: torch.device) -> None:
    """Apply ``iv`` to ``model`` in place through its registered method's ``intervene`` hook.

    The method is set up on a placeholder optimiser with empty state (fine-tuning starts a fresh
    optimiser, so the methods' optimiser-state edits have nothing to act on). The resets'
    ``intervene`` is their task-boundary action at task 1, the first boundary at which every
    reset fires; their random draws come from (seed, method name, 1), so every N of a seed sees
    the same intervened model.
    """
    if iv.method is None:
        return
    method = copy.deepcopy(iv.method)
    unit_map = units.build(model)
    placeholder = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    ctx = MethodContext(model, placeholder, unit_map, seed, device, fresh_model=fresh_model,
                        activations=[None] * len(unit_map))
    method.setup(ctx)
    method.intervene()


def head_names(model: nn.Module) -> set[str]:
    """State-dict keys of the output layer (``model.head_slices()``, else the automatic map's head)."""
    ids = {id(s.tensor) for s in unit_discovery.head_slices(model)}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def with_target_head(model: nn.Module, src: Source, classes: int, head: str, seed: int,
                     device: torch.device) -> nn.Module:
    """``model`` itself when its head is kept, else a copy whose head is freshly initialised for ``classes``.

    The new head comes from a model built from (seed, "transfer-head"); every other parameter and
    buffer is copied from ``model``.
    """
    if head == "auto" and classes == src.classes:
        return model
    out = build_model(src.cfg, src.input_shape, classes, derived_seed(seed, "transfer-head"), device)
    keep = head_names(out)
    state = {k: v for k, v in model.state_dict().items() if k not in head_names(model)}
    res = out.load_state_dict(state, strict=False)
    if set(res.missing_keys) != keep or res.unexpected_keys:
        raise RuntimeError(f"head transplant mismatch: missing {res.missing_keys}, unexpected {res.unexpected_keys}")
    return out


@torch.no_grad()
def changed_units(before: nn.Module, after: nn.Module) -> dict[str, int]:
    """Per unit layer: how many units have *every* entry of their incoming weight rows changed.

    A re-drawn or perturbed unit changes all its incoming weights; a unit whose incoming
    weights only partly changed (the columns read from re-drawn units of the layer below, with
    ``outgoing: init``) does not count.
    """
    out = {}
    for a, b in zip(units.build(before), units.build(after), strict=True):
        diff = torch.ones(a.count, dtype=torch.bool, device=a.in_weight.tensor.device)
        for sa, sb in zip(a.incoming, b.incoming, strict=True):
            if sa.is_weight:
                diff &= (sa.rows() != sb.rows()).all(dim=1)
        out[a.name] = int(diff.sum())
    return out


def target_model(iv: Intervention, pretrained: nn.Module, src: Source, classes: int, head: str, seed: int,
                 device: torch.device) -> tuple[nn.Module, dict[str, int]]:
    """The model fine-tuning starts from: a copy of ``pretrained``, intervened, with the target head.

    Returns:
        (model, changed units per layer relative to ``pretrained``).
    """
    model = copy.deepcopy(pretrained)
    apply_intervention(iv, model, seed=seed, device=device,
                       fresh_model=lambda s: build_model(src.cfg, src.input_shape, src.classes, s, device))
    changed = changed_units(pretrained, model)
    return with_target_head(model, src, classes, head, seed, device), changed


def finetune_config(cfg: TransferConfig, src: Source, seed: int, n: int | None, n_train: int) -> RunConfig:
    """The engine config of one fine-tuning: one abrupt task on the target, no methods, no diagnostics."""
    t = cfg.target
    bs = min(t.optim.batch_size, n_train)
    spe = steps_per_epoch(n_train, bs)
    epochs = t.epochs if t.epochs is not None else t.steps / spe
    return dataclasses.replace(
        src.cfg, seed=seed,
        data=DataConfig(name=t.name, samples_per_class=n, test_samples_per_class=t.test_samples_per_class,
                        root=t.root, normalize=t.normalize),
        tasks=TargetTask(), method=[], augment=t.augment,
        environment=EnvironmentConfig(kind="abrupt", epochs_per_task=epochs, compute_matched=False),
        optim=dataclasses.replace(t.optim, batch_size=bs),
        diagnostics=dataclasses.replace(src.cfg.diagnostics, every="never"))


def stage(model: nn.Module, pool: TargetPool, cfg: RunConfig, with_test: bool) -> dict:
    """Diagnostics of ``model`` on the target probe (and its target test accuracy/loss if asked)."""
    d = pool.data
    fam = TargetTask()
    out = diagnostics.measure(model, units.build(model), d.x_train[pool.probe], d.y_train[pool.probe], fam.loss,
                              cfg.diagnostics)
    if with_test:
        model.eval()
        loss, correct = evaluate_classifier(model, d.x_test, d.y_test, cfg.engine.eval_batch_size)
        model.train()
        loss_sum, n_correct = torch.stack([loss.double(), correct.double()]).tolist()  # SYNC: once per stage
        out.update(test_acc=n_correct / d.x_test.shape[0], test_loss=loss_sum / d.x_test.shape[0])
    return out


def finetune(cfg: TransferConfig, src: Source, pool: TargetPool, model: nn.Module, seed: int, n: int | None,
             curves: Callable[[dict], None]) -> dict:
    """Fine-tune ``model`` (in place) on N images per class; returns the measures and diagnostics."""
    data = subset(pool, n, seed)
    n_train = data.x_train.shape[0]
    ft = finetune_config(cfg, src, seed, n, n_train)
    s = loop.setup(ft, next(model.parameters()).device, base=data, model=model)
    ends: list[dict] = []

    def sink(row: dict) -> None:
        if row["event"] == "task_end":
            ends.append(row)
        elif row["event"] == "epoch":
            curves(row)

    diverged = loop.run([s], [sink])[0] is not None
    end = ends[-1] if ends else {}
    row = {"n_train": n_train, "batch_size": ft.optim.batch_size, "steps": s.schedule.total_steps,
           "diverged": diverged, "finetune_hash": config_hash(ft)}
    row.update({k: end.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")})
    row["finetuned"] = None if diverged else stage(model, pool, ft, with_test=False)
    return row


def pretrained_stage(run_dir: Path) -> dict | None:
    """The pre-training run's last ``task_end`` row: source measures and diagnostics (source probe)."""
    ends = read_metrics(run_dir, "task_end")
    if not ends:
        return None
    last = ends[-1]
    keep = ("task", "train_acc", "test_acc", "train_loss", "test_loss", *STAGE_KEYS, "layers")
    return {k: last[k] for k in keep if k in last}


def default_out(cfg: TransferConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256(json.dumps(to_plain(cfg), sort_keys=True).encode()).hexdigest()[:12]
    return Path("runs") / f"{stamp}-transfer-{digest}"


CSV_FIRST = ("seed", "intervention", "samples_per_class", "n_train", "classes", "batch_size", "steps", "diverged",
             "train_acc", "test_acc", "train_loss", "test_loss", "changed_fraction")


def csv_text(rows: list[dict]) -> str:
    """Rows flattened to CSV: top-level scalars, then ``stage.metric`` for the three stages."""
    cols = list(CSV_FIRST) + [f"grid.{k}" for k in dict.fromkeys(k for r in rows for k in r.get("grid") or {})]
    order = {k: i for i, k in enumerate(("task", "train_acc", "test_acc", "train_loss", "test_loss", *STAGE_KEYS))}
    for st in ("pretrained", "intervened", "finetuned"):
        keys = dict.fromkeys(k for r in rows for k in (r.get(st) or {}) if k != "layers")
        cols += [f"{st}.{k}" for k in sorted(keys, key=lambda k: order.get(k, len(order)))]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        vals = []
        for c in cols:
            st, _, k = c.partition(".")
            v = (r.get(st) or {}).get(k) if k else r.get(c)
            vals.append("" if v is None else v)
        w.writerow(vals)
    return buf.getvalue()


def run_transfer(config: str | Path | dict | TransferConfig, *, overrides: list[str] | None = None,
                 out: str | Path | None = None, device: str | None = None, log: Log | None = None) -> Path:
    """Run a transfer experiment and return its output directory.

    Args:
        config: transfer YAML path, raw mapping or ``TransferConfig``.
        overrides: ``a.b=v`` strings applied to the transfer config (``--set``).
        out: output directory (created; must be empty or absent).
        device: ``auto``/``cpu``/``cuda``; overrides the source's ``engine.device`` (used throughout).
        log: called with one progress line per pre-training and fine-tuning.
    Raises:
        UserError: bad config, missing data, impossible conversion, or a non-empty ``out``;
            raised before anything is written.
    """
    cfg = config if isinstance(config, TransferConfig) else load_transfer_config(config, overrides)
    say = log or (lambda _msg: None)
    if device is not None:
        cfg.source.engine.device = device
    dev = pick_device(cfg.source.engine.device)
    out_dir = Path(out) if out is not None else default_out(cfg)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"transfer output {out_dir} is not an empty directory (choose another --out)")


    # Validate everything a user can get wrong before writing anything.
    first = dataclasses.replace(cfg.source, seed=cfg.seeds[0])
    src = source_info(first, dev)
    load_target(cfg, src, cfg.seeds[0], dev)
    for iv in cfg.interventions:  # a method's setup may reject the model (e.g. no hidden units)
        probe = build_model(first, src.input_shape, src.classes, 0, dev)
        apply_intervention(iv, probe, seed=0, device=dev,
                           fresh_model=lambda s: build_model(first, src.input_shape, src.classes, s, dev))

    rd = RunDirectory(out_dir)
    rd.begin(dump_yaml(cfg), {**provenance(str(dev)), "kind": "transfer"}, rows=False)
    rows: list[dict] = []
    try:
        with open(out_dir / "results.jsonl", "ab") as res, open(out_dir / "curves.jsonl", "ab") as cur:
            for point in source_points(cfg):
                rows += transfer_seed(cfg, src, point, out_dir, dev, res, cur, say)
    except BaseException:
        write_outputs(out_dir, rows)
        rd.finish("failed")
        raise
    write_outputs(out_dir, rows)
    rd.finish("done")
    return out_dir


def write_outputs(out_dir: Path, rows: list[dict]) -> None:
    """results.csv and table.txt of the rows so far."""
    atomic_write(out_dir / "results.csv", csv_text(rows).encode())
    if rows:
        atomic_write(out_dir / "table.txt", (format_tables(rows) + "\n").encode())


def transfer_seed(cfg: TransferConfig, shape: Source, point: SourcePoint, out_dir: Path, dev: torch.device, res,
                  cur, say: Log) -> list[dict]:
    """Pre-train ``point`` (a seed, and a ``source_grid`` point if any) once, then every intervention × N;
    appends rows to ``res`` and returns them."""
    seed, src_cfg = point.seed, point.cfg
    src = Source(src_cfg, shape.input_shape, shape.classes)
    run_dir = out_dir / "pretrain" / point.dir
    say(f"seed {seed}: pre-training → {run_dir}")
    run_source(src_cfg, out=run_dir, device=str(dev))
    status = read_json(run_dir / "provenance.json").get("status")
    if status != "done":
        raise UserError(f"transfer: pre-training of seed {seed} ended '{status}' (see {run_dir}); "
                        "lower source.optim.lr or change the source config")
    pool = load_target(cfg, src, seed, dev)
    pre = pretrained_model(src, run_dir, seed, dev)
    pre_stage = pretrained_stage(run_dir)
    rows = []
    for iv in cfg.interventions:
        model, changed = target_model(iv, pre, src, pool.data.classes, cfg.target.head, seed, dev)
        n_units = sum(layer.count for layer in units.build(pre))
        inter = stage(model, pool, src_cfg, with_test=True)
        for n in cfg.target.samples_per_class:
            say(f"seed {seed}: {iv.label}, N={'all' if n is None else n} per class: fine-tuning")
            tuned = copy.deepcopy(model)

            def curves(row: dict, n=n, label=iv.label) -> None:
                cur.write((json.dumps({"seed": seed, "intervention": label, "samples_per_class": n, **row}) + "\n")
                          .encode())

            ft = finetune(cfg, src, pool, tuned, seed, n, curves)
            cur.flush()
            row = {"seed": seed, **({"grid": point.values} if point.values else {}),
                   "intervention": iv.label, "samples_per_class": n, "classes": pool.data.classes,
                   **{k: v for k, v in ft.items() if k != "finetuned"},
                   "changed_fraction": sum(changed.values()) / n_units, "changed_units": changed,
                   "pretrained": pre_stage, "intervened": inter, "finetuned": ft["finetuned"]}
            res.write((json.dumps(row) + "\n").encode())
            res.flush()
            rows.append(row)
    return rows


def read_results(out_dir: str | Path) -> list[dict]:
    """The rows of ``OUT/results.jsonl``."""
    path = Path(out_dir) / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
