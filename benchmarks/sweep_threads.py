"""Wall time of a small sweep by thread setting: the default (``engine.threads: auto``) against fixed counts.

An 8-run sweep of small ``digits`` runs (random labels, MLP 256×2, 3 tasks) through the ``local``
executor, once per thread setting, rounds interleaved (the machine is shared); prints the median
seconds of each setting and its ratio to the best. The issue-23 target: the default within 1.2×
of the best setting.

Usage::

    python benchmarks/sweep_threads.py [--rounds 3] [--settings auto,1,2,0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from plasticlab.sweep import run_sweep

BASE = {"model": {"hidden": [256, 256]}, "tasks": {"count": 3}, "environment": {"epochs_per_task": 2},
        "diagnostics": {"every": "never"}}


def one(threads: str, out: Path) -> float:
    spec = {"base": {**BASE, "engine": {"threads": threads if threads == "auto" else int(threads)}},
            "grid": {"optim.lr": [1e-3, 3e-3]}, "seeds": [0, 1, 2, 3]}
    t = time.perf_counter()
    run_sweep(spec, executor="local", out=out, progress=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settings", default="auto,1,2,0", help="engine.threads values (0 = torch's default)")
    args = ap.parse_args()
    settings = args.settings.split(",")
    times: dict[str, list[float]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for s in settings:  # why: interleaved, so load from other processes hits every setting alike
                times[s].append(one(s, Path(tmp) / f"{s}-{r}"))
    best = min(statistics.median(v) for v in times.values())
    print(f"8-run local sweep, median of {args.rounds} rounds (s):")
    for s, v in times.items():
        m = statistics.median(v)
        print(f"  engine.threads={s:<5} {m:7.1f} s   {m / best:5.2f}× the best")


if __name__ == "__main__":
    main()
