"""Summary rows (one per run and task) and mean ± 95% CI tables over seeds per group.

A group is a grid point minus the seed: runs whose grid values are equal. For a group, the
*final task* T is the highest task index that every run of the group with data has finished
(= tasks.count − 1 once the group is done). Tables report, per group and measure:
- final task: the estimate (stats.mean_ci) over runs of the value at task T;
- last 5 tasks (``last5``): the estimate over runs of each run's mean over the last min(5, T + 1)
  tasks ending at T (tasks T−4..T), the late-training level less noisy than one task's value;
- mean over tasks: the estimate over runs of each run's mean over tasks 0..T.
A run's mean over a window uses the tasks it has there with a finite value.

A union grid's point has no value for the keys of the other mappings: the group has no such key
(``Group.point`` lacks it), tables show ``—`` and CSV files an empty cell.

Every estimate carries its measure's range (``stats.measure_range``), so its interval ends
(``ci_low``/``ci_high``, plot bands, error bars) never leave it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plasticlab.report.runs import Collection, RunData
from plasticlab.report.stats import Estimate, Robust, iqm_ci, mean_ci, measure_range
from plasticlab.sweep.spec import text

MEASURES = ["train_acc", "test_acc", "train_loss", "test_loss", "train_bleu2", "test_bleu2",
            "train_exact", "test_exact"]
"""Measure names fixed in DESIGN.md (plus the language families' exact match), in display order."""
PRIMARY = ["train_acc", "test_acc", "train_bleu2", "test_bleu2"]
"""Measures drawn as final-task bars (losses only when none of these exists)."""
LAST = 5
SCOPES = ("final", "mean_over_tasks", "last5")
"""``scope`` values of ``tables.csv``, in row order."""
"""Tasks in the ``last5`` window."""
MISSING = "—"
"""Text of a grid key a group's point has no value for (union grids)."""
BOOKKEEPING = {"event", "task", "epoch", "steps", "step", "alpha", "phase", "time", "seconds", "elapsed"}
"""task_end keys that are neither measures nor diagnostics."""


def label(value: Any) -> str:
    """Short readable text for a grid value (the same text as in sweep run ids)."""
    return text(value)


def cell(point: dict[str, Any], key: str) -> str:
    """``label`` of the point's value for ``key``; ``—`` when the point has none (a union grid)."""
    return label(point[key]) if key in point else MISSING


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar(v: Any) -> Any:
    return v if v is None or isinstance(v, (int, float, str, bool)) else label(v)


def summary_rows(col: Collection) -> list[dict]:
    """One row per run and finished task: run, grid values, seed, status, task, scalar metrics."""
    rows = []
    for r in col.runs:
        for t in sorted(r.task_ends):
            rec = r.task_ends[t]
            row: dict[str, Any] = {"run": r.id}
            row.update({k: _scalar(r.point.get(k)) for k in col.keys})
            row.update({"seed": r.seed, "status": r.status, "task": t})
            row.update({k: v for k, v in rec.items() if k not in ("event", "task") and _scalar_like(v)})
            rows.append(row)
    return rows


def _scalar_like(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool))


def summary_columns(col: Collection, rows: list[dict]) -> list[str]:
    head = ["run", *col.keys, "seed", "status", "task"]
    present = {k for row in rows for k in row}
    measures = [m for m in MEASURES if m in present]
    rest = sorted(present - set(head) - set(measures))
    return head + measures + rest


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _csv_cell(row.get(k)) for k in columns})


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def write_parquet(path: Path, rows: list[dict], columns: list[str]) -> bool:
    """Write rows as Parquet; False when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    arrays = {}
    for c in columns:
        vals = [row.get(c) for row in rows]
        given = [v for v in vals if v is not None]
        if given and all(isinstance(v, bool) for v in given):
            arrays[c] = pa.array(vals, pa.bool_())
        elif given and all(isinstance(v, int) and not isinstance(v, bool) for v in given):
            arrays[c] = pa.array(vals, pa.int64())
        elif given and all(_is_number(v) for v in given):
            arrays[c] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
        else:
            arrays[c] = pa.array([None if v is None else str(v) for v in vals], pa.string())
    pq.write_table(pa.table(arrays), path)
    return True


@dataclass
class Group:
    """Runs that share a grid point (seeds differ)."""

    point: dict[str, Any]
    runs: list[RunData]

    @property
    def name(self) -> str:
        return ", ".join(f"{k.split('.')[-1]}={label(v)}" for k, v in self.point.items()) or "all runs"

    @property
    def with_data(self) -> list[RunData]:
        return [r for r in self.runs if r.task_ends]

    def final_task(self) -> int | None:
        """Highest task every run with data has finished; None when no run has data."""
        ends = [max(r.task_ends) for r in self.with_data]
        return min(ends) if ends else None

    def planned_final(self) -> int | None:
        counts = [r.planned_tasks for r in self.runs if r.planned_tasks]
        return max(counts) - 1 if counts else None

    def tasks(self) -> list[int]:
        return sorted({t for r in self.runs for t in r.task_ends})

    def at_task(self, measure: str, task: int) -> Estimate:
        return mean_ci([_num(r.task_ends[task].get(measure)) for r in self.runs if task in r.task_ends],
                       bounds=measure_range(measure))

    def final(self, measure: str) -> Estimate:
        t = self.final_task()
        return Estimate(None, None, 0, measure_range(measure)) if t is None else self.at_task(measure, t)

    def final_values(self, measure: str) -> list[float | None]:
        """Per-run values at the group's final task (runs with data)."""
        t = self.final_task()
        return [] if t is None else [_num(r.task_ends[t].get(measure)) for r in self.runs if t in r.task_ends]

    def final_robust(self, measure: str) -> Robust:
        """IQM over runs at the final task, with its stratified-bootstrap 95% interval (stats.iqm_ci)."""
        return iqm_ci(self.final_values(measure), bounds=measure_range(measure))

    def mean_over_tasks(self, measure: str) -> Estimate:
        """Mean ± CI over runs of each run's mean over tasks 0..T."""
        return self.window(measure, None)

    def last5(self, measure: str) -> Estimate:
        """Mean ± CI over runs of each run's mean over the last min(5, T + 1) tasks ending at T."""
        return self.window(measure, LAST)

    def window(self, measure: str, last: int | None) -> Estimate:
        """Mean ± CI over runs of each run's mean over its ``last`` tasks ending at T (None: all of 0..T)."""
        t_end = self.final_task()
        if t_end is None:
            return Estimate(None, None, 0, measure_range(measure))
        return mean_ci([window_mean(r, measure, t_end, last) for r in self.with_data], bounds=measure_range(measure))


def first_task(t_end: int, last: int | None) -> int:
    """First task of the window of ``last`` tasks ending at ``t_end`` (None: task 0)."""
    return 0 if last is None else max(0, t_end - last + 1)


def window_mean(r: RunData, measure: str, t_end: int, last: int | None) -> float | None:
    """A run's mean of ``measure`` over tasks ``first_task(t_end, last)``..``t_end`` (finite values it has)."""
    xs = [_num(r.task_ends[t].get(measure)) for t in range(first_task(t_end, last), t_end + 1) if t in r.task_ends]
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else None


def _num(v: Any) -> float | None:
    return float(v) if _is_number(v) else None


def groups(col: Collection) -> list[Group]:
    """Runs grouped by grid point, in the order points first appear."""
    out: dict[str, Group] = {}
    for r in col.runs:
        point = {k: r.point[k] for k in col.keys if k in r.point}
        key = json.dumps(point, sort_keys=True, default=str)
        out.setdefault(key, Group(point, [])).runs.append(r)
    return list(out.values())


def present(col: Collection, names: list[str] | None = None) -> list[str]:
    """Numeric task_end keys with at least one value: the given names in order, else diagnostics."""
    found: set[str] = set()
    for r in col.runs:
        for rec in r.task_ends.values():
            found.update(k for k, v in rec.items() if _is_number(v))
    if names is not None:
        return [m for m in names if m in found]
    return sorted(found - set(MEASURES) - BOOKKEEPING)


def fmt(e: Estimate, n_expected: int | None = None) -> str:
    """``mean ± half`` to the half-width's 2nd significant digit, ``mean [low, high]`` when the measure's
    range clips the interval (a loss near 0: never a negative end), ``—`` if empty, ``(n=k)`` if k differs."""
    if e.mean is None:
        return "—"
    if e.half is None:
        text = f"{e.mean:.4g}"
    elif e.half <= 1e-12 * max(1.0, abs(e.mean)):
        text = f"{e.mean:.4g} ± 0"
    else:
        d = min(8, max(0, 1 - math.floor(math.log10(e.half))))  # two significant digits of the half-width
        text = f"{e.mean:.{d}f} [{e.low:.{d}f}, {e.high:.{d}f}]" if e.clipped else f"{e.mean:.{d}f} ± {e.half:.{d}f}"
    return text + (f" (n={e.n})" if n_expected is not None and e.n != n_expected else "")


def table(col: Collection, gs: list[Group], measures: list[str], scope: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a markdown table: grid values, the final task (``scope="final"``) or the tasks
    averaged (``"last5"``; ``"mean"``, over tasks 0..T, has no task column), n, one column per measure."""
    final = scope == "final"
    shown = scope != "mean"
    header = [k.split(".")[-1] for k in col.keys] + (["task" if final else "tasks"] if shown else []) + ["n"] + measures
    rows = []
    for g in gs:
        t, planned = g.final_task(), g.planned_final()
        task = "—" if t is None else f"{t}" + (f" of {planned}" if planned is not None and t < planned else "")
        if t is not None and not final:
            task = f"{first_task(t, LAST)}–{task}"
        n = len(g.with_data)
        cells = [fmt(estimate(g, m, scope), n) for m in measures]
        rows.append([cell(g.point, k) for k in col.keys] + ([task] if shown else []) + [str(n)] + cells)
    return header, rows


def estimate(g: Group, measure: str, scope: str) -> Estimate:
    """The group's estimate of ``measure`` in ``scope``: final, last5, or mean / mean_over_tasks."""
    if scope == "final":
        return g.final(measure)
    return g.last5(measure) if scope == "last5" else g.mean_over_tasks(measure)


def table_by_measure(gs: list[Group], measures: list[str]) -> tuple[list[str], list[list[str]]]:
    """The final-task table transposed: one row per measure, one column per group (many measures)."""
    header = ["", *(g.name for g in gs)]
    rows = [["task", *(str(g.final_task()) for g in gs)], ["n", *(str(len(g.with_data)) for g in gs)]]
    rows += [[m, *(fmt(g.final(m), len(g.with_data)) for g in gs)] for m in measures]
    return header, rows


def long_rows(col: Collection, gs: list[Group], measures: list[str]) -> list[dict]:
    """Machine-readable estimates: one row per scope, group and measure (``tables.csv``)."""
    out = []
    for scope in SCOPES:
        for g in gs:
            for m in measures:
                e = estimate(g, m, scope)
                row: dict[str, Any] = {"scope": scope, "group": g.name}
                row.update({k: _scalar(g.point.get(k)) for k in col.keys})  # a missing key: empty cell
                row.update({"measure": m, "final_task": g.final_task(), "n": e.n, "mean": e.mean, "ci_half": e.half})
                row.update({"ci_low": e.low, "ci_high": e.high})
                if scope == "final":
                    rb = g.final_robust(m)
                    row.update({"iqm": rb.iqm, "iqm_low": rb.low, "iqm_high": rb.high})
                out.append(row)
    return out


def long_columns(col: Collection) -> list[str]:
    return ["scope", "group", *col.keys, "measure", "final_task", "n", "mean", "ci_half", "ci_low", "ci_high",
            "iqm", "iqm_low", "iqm_high"]


def fmt_robust(r: Robust) -> str:
    """``iqm [low, high]`` to three decimals (``iqm`` alone when n = 1; ``—`` when empty)."""
    if r.iqm is None:
        return "—"
    return f"{r.iqm:.3f}" if r.low is None else f"{r.iqm:.3f} [{r.low:.3f}, {r.high:.3f}]"


def robust_table(col: Collection, gs: list[Group], measures: list[str]) -> tuple[list[str], list[list[str]]]:
    """Final task, IQM over seeds [stratified-bootstrap 95% CI] per group and measure."""
    header = [k.split(".")[-1] for k in col.keys] + ["task", "n"] + measures
    rows = []
    for g in gs:
        t = g.final_task()
        rows.append([cell(g.point, k) for k in col.keys] + ["—" if t is None else str(t), str(len(g.with_data))]
                    + [fmt_robust(g.final_robust(m)) for m in measures])
    return header, rows
