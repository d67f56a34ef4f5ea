"""Verdict: each group against a baseline group, paired by seed, on one headline measure.

- **Headline measure**: the recipe's ``measure`` (``recipe.yaml``) when it has values, else the first
  of ``HEADLINE`` the runs report.
- **Baseline**: the group whose grid values are the first value of each grid key in ``sweep.yaml``
  (a collection without ``sweep.yaml``: the first group found). Recipes name no baseline.
- **Paired difference**: for every seed both groups ran, d = value(group) − value(baseline) at task
  T = the lower of the two groups' final tasks; the estimate is the mean of d with its 95% Student's t
  interval (``stats.mean_ci``), clipped to the differences' possible range.
- **Verdict** at 95%: *better* when the interval lies wholly on the measure's good side of 0 (above
  for accuracies and BLEU, below for losses), *worse* when wholly on the other, else *no difference*;
  fewer than two paired seeds give no verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from plasticlab.report.runs import Collection
from plasticlab.report.stats import Estimate, mean_ci, measure_range
from plasticlab.report.tables import Group, _num, label

HEADLINE = ["test_acc", "test_bleu2", "train_acc", "train_bleu2", "test_exact", "train_exact", "test_loss",
            "train_loss"]


def lower_is_better(measure: str) -> bool:
    return measure.endswith("_loss")


def recipe_meta(col: Collection) -> dict:
    try:
        raw = yaml.safe_load((col.path / "recipe.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def headline(col: Collection, present: list[str]) -> str | None:
    wanted = recipe_meta(col).get("measure")
    if isinstance(wanted, str) and wanted in present:
        return wanted
    return next((m for m in HEADLINE if m in present), present[0] if present else None)


def baseline(col: Collection, gs: list[Group]) -> tuple[Group | None, str]:
    """The baseline group and how it was chosen (a sentence for the report)."""
    if len(gs) < 2:
        return None, ""
    try:
        grid = (yaml.safe_load((col.path / "sweep.yaml").read_text()) or {}).get("grid") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        grid = {}
    first = {k: v[0] for k, v in grid.items() if isinstance(v, list) and v}
    if first and set(first) >= set(col.keys):
        text = lambda v: json.dumps(v, sort_keys=True, default=str)
        for g in gs:
            if all(text(g.point.get(k)) == text(first[k]) for k in col.keys):
                return g, f"the first value of each grid key in sweep.yaml ({g.name})"
    return gs[0], f"the first group found ({gs[0].name})"


@dataclass
class Paired:
    group: Group
    task: int | None
    diffs: list[float]
    estimate: Estimate
    verdict: str


def paired(g: Group, base: Group, measure: str) -> Paired:
    ends = [t for t in (g.final_task(), base.final_task()) if t is not None]
    task = min(ends) if len(ends) == 2 else None
    diffs: list[float] = []
    if task is not None:
        by_seed = {r.seed: _num(r.task_ends[task].get(measure)) for r in base.runs if task in r.task_ends}
        for r in g.runs:
            if task in r.task_ends and r.seed in by_seed:
                a, b = _num(r.task_ends[task].get(measure)), by_seed[r.seed]
                if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                    diffs.append(a - b)
    lo, hi = measure_range(measure)
    est = mean_ci(diffs, bounds=(lo - hi, hi - lo))
    return Paired(g, task, diffs, est, verdict_of(est, measure))


def verdict_of(e: Estimate, measure: str) -> str:
    if e.n < 2 or e.low is None:
        return "no verdict (fewer than 2 paired seeds)"
    up = 1.0 if not lower_is_better(measure) else -1.0
    if e.low > 0 or e.high < 0:
        good = (e.low > 0) == (up > 0)
        return f"{'better' if good else 'worse'} at 95%"
    return "no difference at 95%"


def comparisons(col: Collection, gs: list[Group], present: list[str]) -> tuple[str | None, Group | None, str,
                                                                               list[Paired]]:
    measure = headline(col, present)
    base, how = baseline(col, gs)
    if measure is None or base is None:
        return measure, None, how, []
    return measure, base, how, [paired(g, base, measure) for g in gs if g is not base]


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def line(p: Paired, base: Group, measure: str) -> str:
    e = p.estimate
    if e.mean is None:
        return f"{p.group.name} vs baseline {base.name}: no seed in common with data — no verdict."
    ci = "" if e.low is None else f" [{_signed(e.low)}, {_signed(e.high)}]"
    return (f"{p.group.name} vs baseline {base.name}: {measure} at task {p.task} {_signed(e.mean)}{ci} "
            f"(paired over {e.n} seeds) — {p.verdict}.")


def blocks(col: Collection, gs: list[Group], present: list[str], folder: Path) -> list[tuple]:
    """The verdict section (top of the report) and ``paired.csv``; nothing with fewer than two groups."""
    from plasticlab.report.tables import write_csv

    measure, base, how, found = comparisons(col, gs, present)
    if base is None or measure is None:
        return []
    meta = recipe_meta(col)
    out: list[tuple] = [("h2", "Verdict")]
    if meta.get("claim"):
        out.append(("p", f"Claim ({meta.get('paper', 'source not given')}): {meta['claim']}"))
    side = "lower" if lower_is_better(measure) else "higher"
    out.append(("p", f"Each group against the baseline, {how}: the paired difference group − baseline of "
                     f"{measure} ({side} is better) over the seeds both ran, at the lower of the two final tasks; "
                     "mean and 95% t-interval."))
    out += [("verdict", line(p, base, measure)) for p in found]
    rows = []
    for p in found:
        e = p.estimate
        row = {"group": p.group.name, "baseline": base.name, "measure": measure, "task": p.task, "n": e.n,
               "mean_diff": e.mean, "ci_low": e.low, "ci_high": e.high, "verdict": p.verdict}
        row.update({k: label(p.group.point.get(k)) for k in col.keys})
        rows.append(row)
    write_csv(folder / "paired.csv", rows, ["group", *col.keys, "baseline", "measure", "task", "n", "mean_diff",
                                             "ci_low", "ci_high", "verdict"])
    return out
