"""Markdown tables of a transfer recipe on its verdict seeds and its replication seeds (issue 20, item 7).

    .venv/bin/python docs/reproduction/zilly-transfer-size/frozen_dead_summary.py RESULTS_DIR [RESULTS_DIR ...]

Each RESULTS_DIR is a ``plasticlab transfer`` output (its results.jsonl). Per directory: target test
accuracy per intervention × N (mean ± 95% t-CI over seeds), the paired differences to ``none``
(per seed, then mean ± CI; * marks a CI that excludes zero) and the frozen and dead fractions of
the pre-trained models (source probe).
"""

import json
import sys
from pathlib import Path

from plasticlab.transfer.table import mean_ci


def fmt(values: list[float], star: bool = False) -> str:
    m, h = mean_ci(values)
    mark = "*" if star and h is not None and abs(m) > h else ""
    return f"{m:+.3f} ± {h:.3f}{mark}" if star else f"{m:.3f} ± {h:.3f}"


def summary(out: Path) -> str:
    rows = [json.loads(line) for line in open(out / "results.jsonl")]
    seeds = sorted({r["seed"] for r in rows})
    labels = list(dict.fromkeys(r["intervention"] for r in rows))
    ns = list(dict.fromkeys(r["samples_per_class"] for r in rows))
    acc = {(r["intervention"], r["samples_per_class"], r["seed"]): r["test_acc"] for r in rows}
    head = "| | " + " | ".join(f"N = {'all' if n is None else n}" for n in ns) + " |\n|---" + "|---" * len(ns) + "|"
    lines = [f"seeds {seeds[0]}–{seeds[-1]} (n = {len(seeds)}), target test accuracy", "", head]
    for lab in labels:
        lines.append(f"| {lab} | " + " | ".join(fmt([acc[lab, n, s] for s in seeds]) for n in ns) + " |")
    for lab in labels[1:]:
        lines.append(f"| {lab} − none (paired) | "
                     + " | ".join(fmt([acc[lab, n, s] - acc["none", n, s] for s in seeds], star=True) for n in ns)
                     + " |")
    pre = {r["seed"]: r["pretrained"] for r in rows}
    lines += ["", "pre-trained (source probe): " + ", ".join(
        f"{k} {fmt([pre[s][k] for s in seeds])}" for k in ("frozen_fraction", "dead_fraction", "dormant_fraction",
                                                             "test_acc"))]
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(summary(Path(d)) for d in sys.argv[1:]))
