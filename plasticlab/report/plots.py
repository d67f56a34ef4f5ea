"""PNG figures (matplotlib, Agg backend) in the papers' style.

- ``curve_<measure>.png``: the measure at each task end (x = task), one line per group (mean over
  seeds) with a shaded 95% CI band (stats.mean_ci; no band where n = 1). With more than
  ``FACET_OVER`` groups and two or more grid keys there is one panel per value of the first key
  (e.g. the environment), lines for the other keys in the same colours in every panel. Bands are
  clipped to the measure's range (``stats.measure_range``: accuracies, BLEU, fractions in [0, 1];
  losses, norms, ranks ≥ 0).
- ``diagnostics.png``: one panel per diagnostic, same encoding.
- ``final_task.png``: one panel per primary measure, a bar per group at its final task with the
  95% CI (clipped the same way) as an error bar.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # why: reports are written on headless machines; never open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from plasticlab.report.tables import Group, cell, label  # noqa: E402

DPI = 110
FACET_OVER = 6


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


def _draw_curves(ax, gs: list[Group], measure: str, labels: list[str] | None = None,
                 colors: list[int] | None = None) -> bool:
    drawn = False
    for i, g in enumerate(gs):
        xs, ys, lo, hi = _series(g, measure)
        if not xs:
            continue
        c = i if colors is None else colors[i]
        color = f"C{c % 10}"
        style = "-" if c < 10 else "--"
        ax.plot(xs, ys, style, color=color, label=g.name if labels is None else labels[i],
                marker="o" if len(xs) <= 20 else None, ms=3, lw=1.5)
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


def _rest_label(g: Group, first: str) -> str:
    return ", ".join(f"{k.split('.')[-1]}={label(v)}" for k, v in g.point.items() if k != first) or "all"


def faceted_curve(path: Path, gs: list[Group], measure: str, *, partial: bool) -> Path | None:
    """One panel per value of the first grid key; the other keys' lines share colours across panels."""
    first = next(iter(gs[0].point))
    panels: dict[str, list[Group]] = {}
    for g in gs:
        panels.setdefault(cell(g.point, first), []).append(g)
    rests = list(dict.fromkeys(_rest_label(g, first) for g in gs))
    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.4 + 0.22 * len(rests)),
                             squeeze=False, sharey=True)
    try:
        drawn = False
        for ax, (value, members) in zip(axes.flat, panels.items(), strict=False):
            labels = [_rest_label(g, first) for g in members]
            drawn |= _draw_curves(ax, members, measure, labels, [rests.index(lb) for lb in labels])
            ax.set_title(f"{first.split('.')[-1]}={value}", fontsize=9)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        if not drawn:
            return None
        handles = {}
        for ax in axes.flat:
            for h, lb in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(lb, h)
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(3, len(handles)), fontsize=7,
                   frameon=False)
        fig.suptitle(_title(f"{measure} at each task end (mean ± 95% CI)", partial), fontsize=10)
        fig.tight_layout(rect=(0, 0.06 + 0.03 * math.ceil(len(handles) / 3), 1, 0.95))
        fig.savefig(path, dpi=DPI)
        return path
    finally:
        plt.close(fig)


def curve(path: Path, gs: list[Group], measure: str, *, partial: bool) -> Path | None:
    """The measure per task, a line and CI band per group; None when there is nothing to draw."""
    if len(gs) > FACET_OVER and len(gs[0].point) >= 2:
        return faceted_curve(path, gs, measure, partial=partial)
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
            if with_ci:  # why: the ends are clipped to the measure's range, so the bar may be asymmetric
                yerr = [[ests[i].mean - ests[i].low for i in with_ci], [ests[i].high - ests[i].mean for i in with_ci]]
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
