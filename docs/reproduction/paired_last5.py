"""Paired differences between two groups of a committed ``runs.csv`` (the doc's between-group figures).

    python docs/reproduction/paired_last5.py docs/reproduction/lm-step-ablation/runs.csv train_acc 2-1 6-5

lists the groups (grid values) with an index, then for each ``A-B``: per seed, the mean of the measure
over the last five tasks of group A minus that of group B, and the mean ± 95% t-interval of those
differences over the seeds both ran (``plasticlab.report.stats.mean_ci``, the report's estimator).
"""

import csv
import sys
from collections import defaultdict

from plasticlab.recipes.outputs import DIAGNOSTICS
from plasticlab.report.stats import mean_ci
from plasticlab.report.tables import MEASURES


def main(path: str, measure: str, pairs: list[str]) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in rows[0] if k not in ("run", "seed", "task", *MEASURES, *DIAGNOSTICS)]
    per: dict[tuple, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        per[tuple(r[k] for k in keys)][int(r["seed"])][int(r["task"])] = float(r[measure])
    groups = list(per)
    for i, g in enumerate(groups):
        print(i, dict(zip(keys, g, strict=True)))

    def last5(by_task: dict[int, float]) -> float:
        end = max(by_task)
        window = [by_task[t] for t in range(max(0, end - 4), end + 1)]
        return sum(window) / len(window)

    for spec in pairs:
        a, b = (groups[int(i)] for i in spec.split("-"))
        seeds = sorted(set(per[a]) & set(per[b]))
        e = mean_ci([last5(per[a][s]) - last5(per[b][s]) for s in seeds])
        ci = "" if e.half is None else f" [{e.mean - e.half:+.4f}, {e.mean + e.half:+.4f}]"
        print(f"{spec}: {e.mean:+.4f}{ci} over seeds {seeds}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
