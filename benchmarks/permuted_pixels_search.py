"""The documented search for a CPU setting of lm-permuted-emnist's quick profile (issue 20, item 5).

Liu & Mou 2026 (Random Pixel Permuting): under abrupt pixel-permutation switches the test accuracy
reached on each new task decays over tasks; gradual change (input interpolation, task sampling)
keeps it. SETTINGS lists every configuration tried, in the order tried (changes to BASE, the quick
profile before the search); docs/reproduction/lm-permuted-emnist/search.md records the results.

Per run (``method: none``, ``engine.threads: 1``, runs one after another): ``test_acc`` of every
``task_end`` row: task 0 (a fresh network: its generalisation), the mean over the last five tasks,
the final task. Per setting × environment kind, over seeds: mean ± 95% t-interval
(``report.stats.mean_ci``) of task 0, last 5, final; the decay (last 5 − task 0, paired by seed);
the paired differences of last 5 and of the final task from abrupt's (same seeds); CPU seconds per run.

Usage::

    python benchmarks/permuted_pixels_search.py [--only ID,...] [--seeds 0,1,2]
        [--kinds abrupt,input-interpolation,task-sampling] [--baselines] [--out DIR]

Runs are kept in DIR (default sweeps/permuted_pixels_search); a re-run skips finished runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from plasticlab.api import run
from plasticlab.report.stats import mean_ci
from plasticlab.store.rundir import read_metrics

BASE = {"data": {"name": "digits"},
        "tasks": {"family": "permuted-pixels", "count": 20},
        "environment": {"kind": "abrupt", "epochs_per_task": 3, "transition": {"length": 1.0, "step": 0.25},
                        "compute_matched": True},
        "model": {"name": "mlp", "hidden": [256, 256, 256, 256], "norm": "layernorm", "activation": "relu"},
        "optim": {"name": "adam", "lr": 1.0e-3, "batch_size": 64},
        "method": {"name": "none"},
        "diagnostics": {"every": "never"}, "engine": {"threads": 1, "device": "cpu"}}
"""The quick profile before the search (diagnostics off: they do not change the trained numbers)."""

SETTINGS: dict[str, dict] = {
    "q0 (quick before)": {},
    "q1 (digits 50/class, E=10)": {"data": {"samples_per_class": 50}, "environment": {"epochs_per_task": 10}},
    "q2 (mnist1d 100/class, E=5)": {"data": {"name": "mnist1d", "samples_per_class": 100},
                                    "environment": {"epochs_per_task": 5}},
    "q3 (40 tasks)": {"tasks": {"count": 40}},
    "q4 (Adam lr 3e-3)": {"optim": {"lr": 3.0e-3}},
}
"""Name → changes to BASE (a partial config mapping), in the order tried."""
KINDS = ("abrupt", "input-interpolation", "task-sampling")
BASELINES = {"l2": {"name": "l2", "coef": 1.0e-3}, "l2-init": {"name": "l2-init", "coef": 1.0e-3},
             "spectral": {"name": "spectral", "coef": 0.1, "iterations": 2},
             "shrink-perturb": {"name": "shrink-perturb", "shrink": 0.9, "noise": 0.01},
             "redo": {"name": "redo", "every": 138, "tau": 0.1}}
"""--baselines: the recipe's baselines, on abrupt switching (ReDo checks once per task: 138 steps)."""


def merged(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merged(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def one_run(config: dict, out: Path) -> tuple[list[float], float]:
    """(test_acc per task, CPU seconds) of one run; a finished run in ``out`` is read, not re-run."""
    done = out / "cpu.json"
    if not done.exists():
        shutil.rmtree(out, ignore_errors=True)
        cpu = time.process_time()
        run(config, out=out)
        done.write_text(json.dumps(time.process_time() - cpu))
    rows = sorted(read_metrics(out, "task_end"), key=lambda r: r["task"])
    return [r["test_acc"] for r in rows], json.loads(done.read_text())


def fmt(values: list[float]) -> str:
    e = mean_ci(values)
    return f"{e.mean:.3f} ± {e.half:.3f}" if e.half is not None else f"{e.mean:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated setting ids, e.g. q0,q1 (default: all)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--out", default="sweeps/permuted_pixels_search")
    ap.add_argument("--baselines", action="store_true",
                    help="also abrupt + each of BASELINES (rows: Δ vs abrupt with method none)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    ids = args.only.split(",") if args.only else None
    names = [n for n in SETTINGS if ids is None or n.split(" ")[0] in ids]
    print("| setting | kind | n | task 0 | last 5 | final | last 5 − task 0 (paired) "
          "| Δ last 5 vs abrupt (paired) | Δ final vs abrupt (paired) | CPU s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        config = merged(BASE, SETTINGS[name])
        last5: dict[str, list[float]] = {}
        final: dict[str, list[float]] = {}
        rows = [(kind, kind, {}) for kind in args.kinds.split(",")]
        rows += [(f"abrupt + {m}", "abrupt", {"method": BASELINES[m]}) for m in BASELINES if args.baselines]
        for label, kind, over in rows:
            accs, cpus = [], []
            for seed in seeds:
                slug = "".join(c if c.isalnum() else "-" for c in name.split(" ")[0])
                acc, cpu = one_run(merged(config, {"seed": seed, "environment": {"kind": kind}, **over}),
                                   Path(args.out) / slug / f"{label.replace(' + ', '+')}-s{seed}")
                accs.append(acc)
                cpus.append(cpu)
            last5[label] = [sum(a[-5:]) / len(a[-5:]) for a in accs]
            final[label] = [a[-1] for a in accs]
            decay = fmt([m - a[0] for m, a in zip(last5[label], accs, strict=True)])
            vs = ["—" if label == "abrupt" or "abrupt" not in last5
                  else fmt([g - b for g, b in zip(sc[label], sc["abrupt"], strict=True)]) for sc in (last5, final)]
            print(f"| {name} | {label} | {len(seeds)} | {fmt([a[0] for a in accs])} | {fmt(last5[label])} "
                  f"| {fmt(final[label])} | {decay} | {' | '.join(vs)} | {sum(cpus) / len(cpus):.0f} |", flush=True)


if __name__ == "__main__":
    main()
