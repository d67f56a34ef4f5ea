"""The accuracy matrix R[t, j] of continual learning: accuracy on task j after training task t.

Runs with ``diagnostics.past_tasks: N`` write ``past_task_acc`` (``{"j": accuracy}``, earlier tasks
only) in each ``task_end`` row. Per group and seed, row t is that mapping plus the diagonal
R[t, t] = the row's own ``test_acc`` (its ``train_acc`` when ``test_acc`` is null: families without a
test set). Each cell is the mean over the group's seeds that have it (cells no seed measured are
empty). Written as ``accuracy_matrix.csv`` (long form) and ``accuracy_matrix.png`` (one heatmap per
group).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from plasticlab.report.tables import Group, cell

KEY = "past_task_acc"


def _num(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def run_matrix(task_ends: dict[int, dict]) -> dict[tuple[int, int], float]:
    """(t, j) → accuracy for one run; empty when the run never measured past tasks."""
    if not any(isinstance(rec.get(KEY), dict) for rec in task_ends.values()):
        return {}
    out: dict[tuple[int, int], float] = {}
    for t, rec in task_ends.items():
        past = rec.get(KEY)
        for j, v in (past.items() if isinstance(past, dict) else ()):
            x = _num(v)
            if x is not None and str(j).lstrip("-").isdigit() and int(j) <= t:
                out[(t, int(j))] = x
        own = _num(rec.get("test_acc"))
        own = own if rec.get("test_acc") is not None else _num(rec.get("train_acc"))
        if own is not None:
            out[(t, t)] = own
    return out


def group_matrix(g: Group) -> dict[tuple[int, int], tuple[float, int]]:
    """(t, j) → (mean over seeds, number of seeds); empty when no run of the group has ``past_task_acc``."""
    cells: dict[tuple[int, int], list[float]] = {}
    for r in g.runs:
        for key, v in run_matrix(r.task_ends).items():
            cells.setdefault(key, []).append(v)
    return {k: (sum(v) / len(v), len(v)) for k, v in sorted(cells.items())}


def matrices(gs: list[Group]) -> list[tuple[Group, dict[tuple[int, int], tuple[float, int]]]]:
    """The groups that have an accuracy matrix, with it."""
    return [(g, m) for g in gs if (m := group_matrix(g))]


def rows(keys: list[str], found: list[tuple[Group, dict]]) -> list[dict]:
    """Long form for ``accuracy_matrix.csv``: group, grid values, trained, evaluated, n, mean."""
    out = []
    for g, m in found:
        for (t, j), (mean, n) in m.items():
            row: dict[str, Any] = {"group": g.name}
            row.update({k: cell(g.point, k) for k in keys})
            row.update({"trained": t, "evaluated": j, "n": n, "acc": mean})
            out.append(row)
    return out


def columns(keys: list[str]) -> list[str]:
    return ["group", *keys, "trained", "evaluated", "n", "acc"]


def heatmaps(path: Path, found: list[tuple[Group, dict]], *, partial: bool) -> Path | None:
    """One heatmap per group (rows: task trained, columns: task evaluated), shared colour scale [0, 1]."""
    if not found:
        return None
    import numpy as np

    from plasticlab.report.plots import DPI, MaxNLocator, _title, plt

    cols = min(3, len(found))
    nrows = math.ceil(len(found) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.4 * cols, 3.9 * nrows), squeeze=False,
                             layout="constrained")
    try:
        im = None
        for ax, (g, m) in zip(axes.flat, found, strict=False):
            size = max(max(t, j) for t, j in m) + 1
            grid = np.full((size, size), np.nan)
            for (t, j), (mean, _n) in m.items():
                grid[t, j] = mean
            im = ax.imshow(np.ma.masked_invalid(grid), vmin=0.0, vmax=1.0, cmap="viridis", origin="upper",
                           aspect="auto", interpolation="nearest")
            if size <= 12:
                for (t, j), (mean, _n) in m.items():
                    ax.text(j, t, f"{mean:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if mean < 0.6 else "black")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("task evaluated (j)")
            ax.set_ylabel("task trained (t)")
            ax.set_title(g.name, fontsize=9)
        for ax in list(axes.flat)[len(found):]:
            ax.axis("off")
        fig.colorbar(im, ax=list(axes.flat), shrink=0.8, label="accuracy")
        fig.suptitle(_title("accuracy matrix R[t, j] (mean over seeds)", partial), fontsize=10)
        fig.savefig(path, dpi=DPI)
        return path
    finally:
        plt.close(fig)
