"""The measured mitigation table of docs/methods.md: every registered method, and each optimiser
that is not plain SGD/Adam, on digits random labels at equal compute.

Setting: ``digits`` (50 images per class), ``random-labels``, abrupt, ``--tasks`` tasks of
``--epochs`` epochs each, ``compute_matched: false`` (so every variant takes the same optimiser
steps), MLP 64→256×4→10 (LayerNorm, ReLU), Adam lr 1e-3, batch 64, diagnostics off,
``engine.threads: 1``. Rows:

* every method in ``registry.METHODS`` at its defaults (with ``optim.per_entry_step: auto``),
  except that a method with an ``every`` option acting inside steps (ReDo) gets every = steps per
  task, i.e. one check per task after its last step;
* for each method that declares ``entry_step``, the same with ``optim.per_entry_step: false``
  (the old behaviour: torch Adam's one step count per tensor); and ``none`` with
  ``per_entry_step: true``, the control for the optimiser those methods now get (EntryAdam equals
  torch's Adam up to rounding, and training amplifies rounding);
* each optimiser of ``OptimConfig.name`` beyond sgd/adam/adamw with ``method: none``
  (OPTIMISER_OVERRIDES gives its settings);
* each model option of MODEL_VARIANTS (CReLU) the config accepts, with ``method: none``.

Measure: ``train_acc`` of each task's ``task_end`` row (trainability: accuracy on the task's own
training set after training on it). Per seed: the mean over the last five tasks (headline) and
the final task; over seeds: mean ± 95% t-interval (``report.stats.mean_ci``); and the paired
difference from ``none`` (same seeds) with its 95% t-interval. Runs go through the sweep
machinery (``run_sweep``, local executor, ``--pack`` members per batched model).

Usage::

    python benchmarks/mitigation_table.py [--seeds 5] [--tasks 15] [--epochs 10] [--pack 16] [--out DIR]
        [--only LABEL,...] [--set KEY=VALUE ...]

Prints the markdown table (and the CPU seconds of the sweeps).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
import typing
from pathlib import Path

import yaml

from plasticlab import registry
from plasticlab.config import OptimConfig, load_config, set_dotted
from plasticlab.registry import UserError
from plasticlab.report.stats import mean_ci
from plasticlab.store.rundir import read_metrics
from plasticlab.sweep import run_sweep

BASE_OPTIMISERS = ("sgd", "adam", "adamw")
OPTIMISER_OVERRIDES = {"upgd": {"lr": 1.0e-2, "weight_decay": 1.0e-3}}
"""upgd is SGD-like (its step is 2·lr·gradient): lr 1e-2 and the reference's weight decay 1e-3;
trac takes Adam's settings."""
SAMPLES_PER_CLASS, BATCH = 50, 64
MODEL_VARIANTS = {"model.activation: crelu": {"model": {"activation": "crelu"}}}
"""Mitigations that are model options rather than methods (a row only where the config accepts it)."""


def base(tasks: int, epochs: int) -> dict:
    return {"data": {"name": "digits", "samples_per_class": SAMPLES_PER_CLASS},
            "tasks": {"family": "random-labels", "count": tasks},
            "environment": {"kind": "abrupt", "epochs_per_task": epochs, "compute_matched": False},
            "model": {"name": "mlp", "hidden": [256, 256, 256, 256], "norm": "layernorm", "activation": "relu"},
            "optim": {"name": "adam", "lr": 1.0e-3, "batch_size": BATCH},
            "diagnostics": {"every": "never"}, "engine": {"threads": 1, "device": "cpu"}}


def variants(steps_per_task: int) -> dict[str, dict]:
    """Row label → config overrides (a partial config mapping)."""
    none = {"name": "none"}
    rows: dict[str, dict] = {"none": {"method": none},
                             "none (per_entry_step: true)": {"method": none, "optim": {"per_entry_step": True}}}
    for name, cls in sorted(registry.METHODS.items()):
        if name == "none":
            continue
        method = {"name": name}
        fields = {f.name for f in dataclasses.fields(cls)}
        if "every" in fields and getattr(cls, "capture", False):  # a periodic check (ReDo): once per task
            method["every"] = steps_per_task
        rows[name] = {"method": method}
        if getattr(cls, "entry_step", False):
            rows[f"{name} (per_entry_step: false)"] = {"method": method, "optim": {"per_entry_step": False}}
    names = typing.get_args(next(f.type for f in dataclasses.fields(OptimConfig) if f.name == "name"))
    if not names:  # annotations are strings under `from __future__ import annotations`
        names = typing.get_args(typing.get_type_hints(OptimConfig)["name"])
    for opt in names:
        if opt not in BASE_OPTIMISERS:
            optim = {"name": opt, **OPTIMISER_OVERRIDES.get(opt, {})}
            rows[f"optim: {opt}"] = {"method": {"name": "none"}, "optim": optim}
    for label, over in MODEL_VARIANTS.items():
        try:
            load_config(merged(base(1, 1), over))
        except UserError:
            continue
        rows[label] = {"method": {"name": "none"}, **over}
    return rows


def merged(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merged(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def per_seed(run_dir: Path) -> tuple[float, float]:
    """(mean train_acc over the last five tasks, final task's train_acc) of one run."""
    accs = [r["train_acc"] for r in sorted(read_metrics(run_dir, "task_end"), key=lambda r: r["task"])]
    return sum(accs[-5:]) / len(accs[-5:]), accs[-1]


def fmt(values: list[float]) -> str:
    e = mean_ci(values)
    return f"{e.mean:.3f} ± {e.half:.3f}" if e.half is not None else f"{e.mean:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pack", type=int, default=16)
    ap.add_argument("--out", default="sweeps/mitigation_table")
    ap.add_argument("--only", default="", help="comma-separated row labels (default: all)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change the setting for every row (YAML value), e.g. model.norm=none")
    args = ap.parse_args()
    steps_per_task = args.epochs * (SAMPLES_PER_CLASS * 10 // BATCH)
    rows = variants(steps_per_task)
    if args.only:
        rows = {k: v for k, v in rows.items() if k in args.only.split(",")}
    seeds = list(range(args.seeds))
    out = Path(args.out)
    results: dict[str, list[tuple[float, float]]] = {}
    cpu = time.process_time()
    wall = time.perf_counter()
    for label, over in rows.items():  # one sweep per row (its seeds pack together); a re-run skips finished runs
        config = merged(base(args.tasks, args.epochs), over)
        for item in args.set:
            key, _, value = item.partition("=")
            set_dotted(config, key, yaml.safe_load(value))
        spec = {"base": config, "grid": {}, "seeds": seeds}
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        sweep_dir = run_sweep(spec, executor="local", out=out / slug, progress=False, pack=args.pack)
        runs = [json.loads(line) for line in (sweep_dir / "runs.jsonl").read_text().splitlines() if line.strip()]
        results[label] = [per_seed(sweep_dir / r["path"] if not Path(r["path"]).is_absolute() else Path(r["path"]))
                          for r in sorted(runs, key=lambda r: r["seed"])]
    print(f"{len(rows)} rows × {len(seeds)} seeds: {time.process_time() - cpu:.0f} CPU s, "
          f"{time.perf_counter() - wall:.0f} s wall")
    ref = results.get("none")
    print("| variant | last 5 tasks (mean ± 95% CI) | final task | Δ last 5 vs none (paired) |")
    print("|---|---|---|---|")
    for label, vals in results.items():
        last5, final = [v[0] for v in vals], [v[1] for v in vals]
        diff = fmt([a - b[0] for a, b in zip(last5, ref, strict=True)]) if ref and label != "none" else "—"
        print(f"| {label} | {fmt(last5)} | {fmt(final)} | {diff} |")


if __name__ == "__main__":
    main()
