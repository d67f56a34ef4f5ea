"""Verdict: each group against a baseline group, paired by seed, on one headline measure, in two scopes.

- **Headline measure**: the recipe's ``measure`` (``recipe.yaml``) when it has values, else the first
  of ``HEADLINE`` the runs report.
- **The sweep's first point**: the group whose grid values are the first point of the first grid
  mapping in ``sweep.yaml`` (a plain mapping: the first value of each grid key; a union grid, a list
  of mappings: the first value of each key of the first mapping); a collection without
  ``sweep.yaml``: the first group found.
- **Baseline of a group**: with a recipe that declares ``baseline: {dotted.key: value, …}``
  (``recipe.yaml``), the group whose grid point equals the group's own with those keys set to those
  values (values compared by their JSON text), e.g. ``{environment.kind: abrupt}`` pairs
  ``kind=output-interpolation, k=2`` with ``kind=abrupt, k=2``; when no group has that point, and
  without a recipe baseline, the sweep's first point. A group that is its own baseline is not compared.
  Each verdict line and ``paired.csv`` row names the baseline it used and how it was chosen.
- **Paired difference**, per scope, for every seed both groups ran, at task T = the lower of the two
  groups' final tasks: ``final``: d = value(group) − value(baseline) at task T; ``last5``: d = the
  difference of the runs' means over the last min(5, T + 1) tasks ending at T (tasks T−4..T, the
  tables' ``last5`` window). The estimate is the mean of d with its 95% Student's t interval
  (``stats.mean_ci``), clipped to the differences' possible range.
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
from plasticlab.report.tables import LAST, Group, _num, first_task, label, window_mean
from plasticlab.sweep.spec import mappings

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


SCOPES = ("final", "last5")
"""``scope`` values of ``paired.csv``, in the order each group's rows and lines appear."""


def _texts(point: dict) -> dict[str, str]:
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in point.items()}


def first_point(grid: dict | list | None) -> dict:
    """The first point of the first grid mapping (a plain mapping: the first value of each key)."""
    return {k: v[0] for k, v in mappings(grid)[0].items() if isinstance(v, list) and v}


def baseline(col: Collection, gs: list[Group]) -> tuple[Group | None, str]:
    """The sweep's first point (the default baseline) and how it was chosen (a sentence for the report)."""
    if len(gs) < 2:
        return None, ""
    try:
        grid = (yaml.safe_load((col.path / "sweep.yaml").read_text()) or {}).get("grid")
    except (OSError, yaml.YAMLError, AttributeError):
        grid = None
    first = first_point(grid) if isinstance(grid, (dict, list)) and grid else {}
    want = _texts({k: v for k, v in first.items() if k in col.keys})
    if first:
        for g in gs:
            if _texts(g.point) == want:
                where = "the first value of each grid key" if isinstance(grid, dict) else \
                    "the first point of the first grid mapping"
                return g, f"{where} in sweep.yaml ({g.name})"
    return gs[0], f"the first group found ({gs[0].name})"


def recipe_baseline(col: Collection) -> dict:
    """The recipe's ``baseline`` mapping (dotted key → value); empty when it declares none."""
    spec = recipe_meta(col).get("baseline")
    return spec if isinstance(spec, dict) else {}


def baselines(col: Collection, gs: list[Group]) -> tuple[list[tuple[Group, Group, str]], str]:
    """(group, its baseline, how that baseline was chosen) for every group compared, and a sentence on the
    rule; empty with fewer than two groups."""
    first, base_how = baseline(col, gs)
    if first is None:
        return [], base_how
    spec = recipe_baseline(col)
    named = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in spec.items())
    out = []
    for g in gs:
        base, which = first, "first point"
        if spec:
            want = _texts({**g.point, **spec})
            match = next((h for h in gs if _texts(h.point) == want), None)
            base, which = (match, "recipe") if match is not None else (first, f"first point (no group with {named})")
        if base is not g:
            out.append((g, base, which))
    how = f"the baseline, {base_how}"
    if spec:
        how = (f"its baseline: the group with the recipe's `baseline` values ({named}) in place of its own; where "
               f"no group has them, the sweep's first point, {base_how}")
    return out, how


@dataclass
class Paired:
    group: Group
    baseline: Group
    scope: str
    """final | last5"""
    task: int | None
    """T: the last task compared (the lower of the two groups' final tasks)."""
    diffs: list[float]
    estimate: Estimate
    verdict: str
    which: str = "first point"
    """How the baseline was chosen: ``recipe`` or ``first point …``."""

    @property
    def first(self) -> int | None:
        """First task of the compared window (= ``task`` for ``final``)."""
        return None if self.task is None else first_task(self.task, 1 if self.scope == "final" else LAST)


def paired(g: Group, base: Group, measure: str, scope: str = "final", which: str = "first point") -> Paired:
    ends = [t for t in (g.final_task(), base.final_task()) if t is not None]
    task = min(ends) if len(ends) == 2 else None
    diffs: list[float] = []
    if task is not None:
        value = lambda r: (_num(r.task_ends[task].get(measure)) if scope == "final"
                           else window_mean(r, measure, task, LAST))
        by_seed = {r.seed: value(r) for r in base.runs if task in r.task_ends}
        for r in g.runs:
            if task in r.task_ends and r.seed in by_seed:
                a, b = value(r), by_seed[r.seed]
                if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                    diffs.append(a - b)
    lo, hi = measure_range(measure)
    est = mean_ci(diffs, bounds=(lo - hi, hi - lo))
    return Paired(g, base, scope, task, diffs, est, verdict_of(est, measure), which)


def verdict_of(e: Estimate, measure: str) -> str:
    if e.n < 2 or e.low is None:
        return "no verdict (fewer than 2 paired seeds)"
    up = 1.0 if not lower_is_better(measure) else -1.0
    if e.low > 0 or e.high < 0:
        good = (e.low > 0) == (up > 0)
        return f"{'better' if good else 'worse'} at 95%"
    return "no difference at 95%"


def comparisons(col: Collection, gs: list[Group], present: list[str]) -> tuple[str | None, str, list[Paired]]:
    """The headline measure, the sentence on how baselines are chosen, and each group's comparisons
    (one per scope, ``SCOPES`` order)."""
    measure = headline(col, present)
    pairs, how = baselines(col, gs)
    if measure is None:
        return None, how, []
    return measure, how, [paired(g, b, measure, scope, which) for g, b, which in pairs for scope in SCOPES]


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def line(p: Paired, measure: str, recipe: bool = False) -> str:
    """One verdict line; ``recipe``: say how the baseline was chosen (the recipe declares a baseline)."""
    how = f" ({p.which})" if recipe else ""
    head = f"{p.group.name} vs baseline {p.baseline.name}{how}"
    e = p.estimate
    if e.mean is None:
        return f"{head}: no seed in common with data — no verdict."
    ci = "" if e.low is None else f" [{_signed(e.low)}, {_signed(e.high)}]"
    where = f"at task {p.task}" if p.scope == "final" else f"mean over tasks {p.first}–{p.task}"
    return f"{head}: {measure} {where} {_signed(e.mean)}{ci} (paired over {e.n} seeds) — {p.verdict}."


def blocks(col: Collection, gs: list[Group], present: list[str], folder: Path) -> list[tuple]:
    """The verdict section (top of the report) and ``paired.csv``; nothing with fewer than two groups."""
    from plasticlab.report.tables import write_csv

    measure, how, found = comparisons(col, gs, present)
    if not found or measure is None:
        return []
    meta = recipe_meta(col)
    out: list[tuple] = [("h2", "Verdict")]
    if meta.get("claim"):
        out.append(("p", f"Claim ({meta.get('paper', 'source not given')}): {meta['claim']}"))
    side = "lower" if lower_is_better(measure) else "higher"
    out.append(("p", f"Each group against {how}. Paired by seed: the difference group − baseline of {measure} "
                     f"({side} is better) at T, the lower of the two groups' final tasks, and the difference of the "
                     f"runs' means over the last min({LAST}, T + 1) tasks ending at T; mean and 95% t-interval over "
                     "the seeds both ran."))
    recipe = bool(recipe_baseline(col))
    out += [("verdict", line(p, measure, recipe)) for p in found]
    rows = []
    for p in found:
        e = p.estimate
        row = {"scope": p.scope, "group": p.group.name, "baseline": p.baseline.name, "baseline_by": p.which,
               "measure": measure, "first_task": p.first, "task": p.task, "n": e.n, "mean_diff": e.mean,
               "ci_low": e.low, "ci_high": e.high, "verdict": p.verdict}
        row.update({k: label(p.group.point[k]) if k in p.group.point else None for k in col.keys})
        rows.append(row)
    write_csv(folder / "paired.csv", rows, ["scope", "group", *col.keys, "baseline", "baseline_by", "measure",
                                             "first_task", "task", "n", "mean_diff", "ci_low", "ci_high", "verdict"])
    return out
