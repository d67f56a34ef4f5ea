"""PNG figures (matplotlib, Agg backend) in the papers' style.

- ``curve_<measure>.png``: the measure at each task end (x = task), one line per group (mean over
  seeds) with a shaded 95% CI band (stats.mean_ci; no band where n = 1).
- ``diagnostics.png``: one panel per diagnostic, same encoding.
- ``final_task.png``: one panel per primary measure, a bar per group at its final task with the
  95% CI as an error bar.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # why: reports are written on headless machines; never open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from plasticlab.report.tables import Group  # noqa: E402

DPI = 110


def _series(g: Group, measure: str) -> tuple[list[int], list[float], list[float], list[float]]:
    xs, ys, lo, hi = [], [], [], []
    for t in g.tasks():
        e = g.at_task(measure, t)
        if e.mean is None:
            continue
        xs.append(t)
        ys.append(e.mean)
        lo.append(e.mean if e.low is None else e.low)
        hi.append(e.mean if e.high is None else e.high)
    return xs, ys, lo, hi


def _draw_curves(ax, gs: list[Group], measure: str) -> bool:
    drawn = False
    for i, g in enumerate(gs):
        xs, ys, lo, hi = _series(g, measure)
        if not xs:
            continue
        color = f"C{i % 10}"
        ax.plot(xs, ys, color=color, label=g.name, marker="o" if len(xs) <= 20 else None, ms=3, lw=1.5)
        if any(a != b for a, b in zip(lo, hi, strict=True)):
            ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)
        drawn = True
    ax.set_xlabel("task")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(measure)
    ax.grid(alpha=0.3)
    return drawn


def _title(text: str, partial: bool) -> str:
    return text + (" (partial)" if partial else "")


def curve(path: Path, gs: list[Group], measure: str, *, partial: bool) -> Path | None:
    """The measure per task, a line and CI band per group; None when there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    try:
        if not _draw_curves(ax, gs, measure):
            return None
        ax.set_title(_title(f"{measure} at each task end (mean ± 95% CI)", partial), fontsize=10)
        if len(gs) > 1:
            ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
        return path
    finally:
        plt.close(fig)


def diagnostics(path: Path, gs: list[Group], names: list[str], *, partial: bool) -> Path | None:
    """One panel per diagnostic over tasks; None when no diagnostic has values."""
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    try:
        for ax, name in zip(axes.flat, names, strict=False):
            _draw_curves(ax, gs, name)
            ax.set_title(name, fontsize=9)
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)
        if len(gs) > 1:
            axes.flat[0].legend(fontsize=6, loc="best")
        fig.suptitle(_title("diagnostics at each task end (mean ± 95% CI)", partial), fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # why: keep the suptitle clear
        fig.savefig(path, dpi=DPI)
        return path
    finally:
        plt.close(fig)


def final_bars(path: Path, gs: list[Group], measures: list[str], *, partial: bool) -> Path | None:
    """A bar per group at its final task, 95% CI error bars; one panel per measure."""
    if not measures or not any(g.final(m).mean is not None for g in gs for m in measures):
        return None
    fig, axes = plt.subplots(1, len(measures), figsize=(max(4.0, 0.6 * len(gs) + 2.5) * len(measures), 4.0))
    axes = [axes] if len(measures) == 1 else list(axes)
    try:
        for ax, m in zip(axes, measures, strict=True):
            ests = [g.final(m) for g in gs]
            heights = [0.0 if e.mean is None else e.mean for e in ests]
            ax.bar(range(len(gs)), heights, color=[f"C{i % 10}" for i in range(len(gs))])
            with_ci = [i for i, e in enumerate(ests) if e.half is not None]
            if with_ci:
                yerr = [ests[i].half for i in with_ci]
                ax.errorbar(with_ci, [heights[i] for i in with_ci], yerr=yerr, fmt="none", ecolor="k", capsize=3)
            ax.set_xticks(range(len(gs)), [g.name for g in gs], rotation=30, ha="right", fontsize=7)
            ax.set_ylabel(m)
            ax.set_title(m, fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(_title("final task (mean ± 95% CI)", partial), fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
        fig.savefig(path, dpi=DPI)
        return path
    finally:
        plt.close(fig)
