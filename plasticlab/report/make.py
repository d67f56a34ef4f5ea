"""``make_report``: summary.csv (+ Parquet), tables, PNG plots, report.md and report.html.

Usage::

    from plasticlab.report import make_report
    make_report("sweeps/lr")          # -> sweeps/lr/report/

Works on a run, a sweep (finished or still running: results are marked partial) or a folder of
run directories. The report is written into a temporary folder next to ``out`` and moved into
place at the end, so a failure leaves no half-written report.

``portable=True`` writes a report meant to be committed (e.g. under ``docs/``): no time stamp, no
host name and no absolute path (run directories and logs are named relative to the sweep root, as
text rather than links), so the same runs give byte-identical ``report.md``, ``tables.csv`` and
``paired.csv`` whenever and wherever the report is re-made.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from plasticlab.report import matrix, plots, provenance, stats, tables, verdict
from plasticlab.report.recipe import recipe_blocks
from plasticlab.report.render import markdown, to_html
from plasticlab.report.runs import Collection, load

PARQUET_NOTICE = "report: summary.parquet not written (pyarrow is not installed: pip install 'plasticlab[parquet]')"


def make_report(path: str | Path, out: str | Path | None = None, *, portable: bool = False) -> Path:
    """Write the report of the run or sweep at ``path``.

    Args:
        path: a run directory, a sweep directory or a folder of run directories.
        out: report directory; default ``<path>/report``. Replaced if it exists.
        portable: no time stamp, host name or absolute path: the same runs give the same bytes.

    Returns:
        The report directory.
    """
    col = load(path)
    dest = Path(out) if out is not None else Path(path) / "report"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        _write(col, tmp, dest, portable)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def _write(col: Collection, folder: Path, dest: Path, portable: bool = False) -> None:
    """Write the report's files into ``folder``; links to run directories are relative to ``dest`` (portable:
    paths relative to the collection's root, as text)."""
    rows = tables.summary_rows(col)
    columns = tables.summary_columns(col, rows)
    tables.write_csv(folder / "summary.csv", rows, columns)
    if not tables.write_parquet(folder / "summary.parquet", rows, columns):
        print(PARQUET_NOTICE, file=sys.stderr)

    gs = tables.groups(col)
    measures = tables.present(col, tables.MEASURES)
    diags = tables.present(col)
    tables.write_csv(folder / "tables.csv", tables.long_rows(col, gs, measures + diags), tables.long_columns(col))

    blocks: list[tuple] = [("h1", f"plasticlab report: {col.path.name}")]
    blocks.append(("p", _overview(col, portable)))
    if col.partial:
        blocks.append(("note", _partial_note(col)))
    if not rows:
        blocks.append(("p", "No run has finished a task yet: no tables or plots."))
    else:
        blocks += verdict.blocks(col, gs, measures, folder)
        blocks += recipe_blocks(col, folder)
        blocks += _tables(col, gs, measures, diags)
        blocks += _plots(col, gs, measures, diags, folder)
        blocks += _matrix(col, gs, folder)
    blocks += provenance.blocks(col, gs, None if portable else dest)
    blocks += _runs(col, portable)
    (folder / "report.md").write_text(markdown(blocks))
    (folder / "report.html").write_text(to_html(blocks, folder, f"plasticlab report: {col.path.name}"))


def _overview(col: Collection, portable: bool = False) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(col.counts().items()))
    keys = ", ".join(col.keys) if col.keys else "none"
    where = col.path.name if portable else col.path
    stamp = "" if portable else f"; generated {time.strftime('%Y-%m-%d %H:%M:%S')}"
    return (
        f"{col.kind} at {where} — {len(col.runs)} runs ({counts}); group keys: {keys}; "
        f"values are mean ± 95% CI over seeds (t-interval){stamp}."
    )


def _partial_note(col: Collection) -> str:
    c = col.counts()
    finished = sum(c.get(s, 0) for s in ("done", "failed", "diverged"))
    return (
        f"Partial results: {finished} of {len(col.runs)} runs finished ({c.get('running', 0)} running or "
        f"interrupted, {c.get('pending', 0)} not started). Each group is reported at the last task all its "
        "runs with data have finished."
    )


def _tables(col: Collection, gs: list[tables.Group], measures: list[str], diags: list[str]) -> list[tuple]:
    out: list[tuple] = []
    if measures:
        out += [("h2", "Final task"), ("table", *tables.table(col, gs, measures, "final"))]
        out += [("h2", f"Mean over the last {tables.LAST} tasks"),
                ("p", f"Per run, the mean over the last min({tables.LAST}, T + 1) tasks ending at the group's final "
                      "task T; then mean ± 95% t-interval over runs."),
                ("table", *tables.table(col, gs, measures, "last5"))]
        out += [("h2", "Mean over tasks"), ("table", *tables.table(col, gs, measures, "mean"))]
    if diags:
        # why: a dozen diagnostics side by side are unreadable; one row each reads well for a few groups
        wide = tables.table_by_measure(gs, diags) if len(diags) > len(gs) else tables.table(col, gs, diags, "final")
        out += [("h2", "Diagnostics at the final task"), ("table", *wide)]
    if measures:
        out += [("h2", "Robust aggregates at the final task"),
                ("p", "Interquartile mean (IQM: the mean of the middle 50% of the seeds' values) with a 95% "
                      f"stratified-bootstrap interval ({stats.BOOTSTRAP_RESAMPLES} resamples of the runs within each "
                      f"group, seed {stats.BOOTSTRAP_SEED}, percentile interval, clipped to the measure's range)."),
                ("table", *tables.robust_table(col, gs, measures))]
    return out


def _plots(col, gs, measures, diags, folder: Path) -> list[tuple]:
    out: list[tuple] = [("h2", "Plots")]
    for m in measures:
        if plots.curve(folder / f"curve_{m}.png", gs, m, partial=col.partial):
            out.append(("img", f"curve_{m}.png", f"{m} at each task end"))
    if plots.diagnostics(folder / "diagnostics.png", gs, diags, partial=col.partial):
        out.append(("img", "diagnostics.png", "diagnostics at each task end"))
    bars = [m for m in tables.PRIMARY if m in measures] or measures
    if plots.final_bars(folder / "final_task.png", gs, bars, partial=col.partial):
        out.append(("img", "final_task.png", "final task"))
    return out if len(out) > 1 else []


def _matrix(col: Collection, gs: list[tables.Group], folder: Path) -> list[tuple]:
    found = matrix.matrices(gs)
    if not found:
        return []
    tables.write_csv(folder / "accuracy_matrix.csv", matrix.rows(col.keys, found), matrix.columns(col.keys))
    out: list[tuple] = [
        ("h2", "Accuracy matrix"),
        ("p", "R[t, j]: accuracy on task j (columns) measured at the end of task t (rows), mean over seeds; the "
              "diagonal is the task's own test_acc (train_acc where it has no test set); off-diagonal cells are "
              "past_task_acc (diagnostics.past_tasks). Long form in accuracy_matrix.csv."),
    ]
    if matrix.heatmaps(folder / "accuracy_matrix.png", found, partial=col.partial):
        out.append(("img", "accuracy_matrix.png", "accuracy matrix: task trained × task evaluated"))
    return out


def _runs(col: Collection, portable: bool = False) -> list[tuple]:
    header = ["run", *(k.split(".")[-1] for k in col.keys), "seed", "status", "tasks done", "path"]
    rows = []
    for r in col.runs:
        planned = r.planned_tasks
        done = f"{len(r.task_ends)}" + (f" of {planned}" if planned else "")
        rows.append(
            [
                r.id,
                *(tables.cell(r.point, k) for k in col.keys),
                str(r.seed),
                r.status,
                done,
                _rel(r.path, col.path) if portable else str(r.path),
            ]
        )
    out: list[tuple] = [("h2", "Runs"), ("table", header, rows)]
    bad = [r for r in col.runs if r.status in ("failed", "diverged")]
    if bad:
        lines = []
        for r in bad:
            log = col.path / "logs" / f"{r.id}.log"
            lines.append([r.id, r.status, _rel(log if log.is_file() else r.path, col.path, portable)])
        out += [("h2", "Failed or diverged runs"), ("table", ["run", "status", "log"], lines)]
    return out


def _rel(path: Path, root: Path, portable: bool = True) -> str:
    """``path`` relative to ``root``; outside it, absolute (portable: ``.`` for the root, else the name)."""
    if path.is_relative_to(root) and path != root:
        return path.relative_to(root).as_posix()
    if portable:
        return "." if path == root else path.name
    return str(path)
