"""The recipe section of a report: the paper's claim and the recipe's analysis.

A sweep started from a recipe has ``recipe.yaml`` beside ``sweep.yaml``. Its ``analysis`` may ask
for a correlation across runs between two task-end values, written ``metric@task``::

    analysis: {correlation: {x: input_sensitivity@0, y: test_acc@1}}

A transfer recipe (a profile with ``transfer:``) names two results columns instead (a top-level
key or ``stage.metric``, as in ``results.csv``), correlated across pre-trained models (every
``source_grid`` point × seed) separately for each (intervention, N)::

    analysis: {correlation: {x: pretrained.input_sensitivity, y: test_acc}}

and writes ``correlation.txt``, ``correlation.csv`` and ``correlation.png`` beside ``table.txt``:
pooled over all models, and within seed (every model of a seed is fine-tuned on the same target
images in the same order, so centring x and y on their seed's mean removes the seed's shift).

Both report Pearson's r and Spearman's ρ (Pearson of ranks, ties averaged) with 95% confidence
intervals by Fisher's z-transform: z = atanh(r), CI = tanh(z ± z₀.₉₇₅·√(v/(n−3))), with v = 1 for
Pearson (exact for a bivariate normal as n grows) and v = 1 + ρ²/2 for Spearman (Bonett & Wright
2000, Psychometrika 65:23). No CI below n = 4 points; a perfect correlation (|r| = 1) gets [r, r].
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from plasticlab.report.runs import Collection

Z975 = 1.959963984540054
"""The standard normal's 0.975 quantile."""


@dataclass
class Correlation:
    """Pearson r and Spearman ρ of n points, each with its 95% Fisher-z CI (None where undefined)."""

    n: int
    r: float | None
    r_ci: tuple[float, float] | None
    rho: float | None
    rho_ci: tuple[float, float] | None


def parse_ref(ref: str) -> tuple[str, int]:
    metric, _, task = ref.partition("@")
    return metric, int(task) if task else -1


def value_at(task_ends: dict[int, dict], metric: str, task: int) -> float | None:
    if not task_ends:
        return None
    row = task_ends.get(task if task >= 0 else max(task_ends))
    v = None if row is None else row.get(metric)
    return finite(v)


def finite(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def pearson(x: list[float], y: list[float]) -> float | None:
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy))) if sxx > 0 and syy > 0 else None


def ranks(v: list[float]) -> list[float]:
    order = sorted(range(len(v)), key=lambda i: v[i])
    out = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def fisher_ci(r: float | None, n: int, v: float = 1.0) -> tuple[float, float] | None:
    """95% CI of a correlation r of n points: tanh(atanh r ± z₀.₉₇₅·√(v/(n−3))); None for n < 4."""
    if r is None or n < 4:
        return None
    if abs(r) >= 1.0:
        return r, r
    z, h = math.atanh(r), Z975 * math.sqrt(v / (n - 3))
    return math.tanh(z - h), math.tanh(z + h)


def correlate(xs: list[float], ys: list[float], groups: list | None = None) -> Correlation:
    """Pearson r (CI variance 1/(n−3)) and Spearman ρ (CI variance (1 + ρ²/2)/(n−3)) of the points.

    With ``groups`` (one label per point, e.g. its seed): the within-group correlation. x and y
    (for ρ: their ranks) are centred on their group's mean first, and the CI uses n − (g − 1)
    for g groups (a partial correlation controlling for g − 1 group indicators).
    """
    n = len(xs)
    k = 0 if groups is None else len(set(groups)) - 1
    rx, ry = ranks(xs), ranks(ys)
    if groups is not None:
        xs, ys, rx, ry = (centred(v, groups) for v in (xs, ys, rx, ry))
    r = pearson(xs, ys)
    rho = pearson(rx, ry) if n >= 3 else None
    rho_ci = None if rho is None else fisher_ci(rho, n - k, 1 + rho * rho / 2)
    return Correlation(n, r, fisher_ci(r, n - k), rho, rho_ci)


def centred(v: list[float], groups: list) -> list[float]:
    """Each value minus the mean of its group's values."""
    sums: dict = {}
    for a, g in zip(v, groups, strict=True):
        total, count = sums.get(g, (0.0, 0))
        sums[g] = (total + a, count + 1)
    return [a - sums[g][0] / sums[g][1] for a, g in zip(v, groups, strict=True)]


def fmt_corr(v: float | None, ci: tuple[float, float] | None) -> str:
    if v is None:
        return "-"
    return f"{v:+.3f}" if ci is None else f"{v:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def correlation_pairs(col: Collection, x_ref: str, y_ref: str) -> list[tuple[float, float, str]]:
    (mx, tx), (my, ty) = parse_ref(x_ref), parse_ref(y_ref)
    out = []
    for r in col.runs:
        x, y = value_at(r.task_ends, mx, tx), value_at(r.task_ends, my, ty)
        if x is not None and y is not None:
            out.append((x, y, r.id))
    return out


def recipe_blocks(col: Collection, folder: Path) -> list[tuple]:
    meta_path = col.path / "recipe.yaml"
    if not meta_path.is_file():
        return []
    meta = yaml.safe_load(meta_path.read_text()) or {}
    blocks: list[tuple] = [("h2", f"Recipe {meta.get('name')} (profile {meta.get('profile')})")]
    if meta.get("claim"):
        blocks.append(("p", f"Claim ({meta.get('paper', 'source not given')}): {meta['claim']}"))
    if meta.get("measure"):
        blocks.append(("p", f"Measure: {meta['measure']}"))
    corr = (meta.get("analysis") or {}).get("correlation")
    if corr:
        pairs = correlation_pairs(col, corr["x"], corr["y"])
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        c = correlate(xs, ys)
        blocks += [("h2", "Correlation across runs"),
                   ("p", "95% CIs by Fisher's z: Pearson variance 1/(n−3), Spearman (1 + ρ²/2)/(n−3)."),
                   ("table", ["x", "y", "runs", "Pearson r [95% CI]", "Spearman ρ [95% CI]"],
                    [[corr["x"], corr["y"], str(c.n), fmt_corr(c.r, c.r_ci), fmt_corr(c.rho, c.rho_ci)]])]
        if pairs and scatter(folder / "correlation.png", [("", xs, ys, c.r)], corr["x"], corr["y"]):
            blocks.append(("img", "correlation.png", f"{corr['y']} against {corr['x']}"))
    return blocks


def row_value(row: dict, ref: str) -> float | None:
    """A results row's value named as its ``results.csv`` column: ``key`` or ``stage.metric``."""
    stage, _, key = ref.partition(".")
    return finite((row.get(stage) or {}).get(key) if key else row.get(ref))


def transfer_correlations(rows: list[dict], x: str, y: str,
                          within_seed: bool = False) -> list[tuple[str, int | None, Correlation, list]]:
    """Per (intervention, N): the correlation of ``x`` and ``y`` over the rows (one per pre-trained model;
    ``within_seed``: centred per seed, see ``correlate``), and its points [(x, y, row), …]."""
    out = []
    for label in dict.fromkeys(r["intervention"] for r in rows):
        for n in dict.fromkeys(r["samples_per_class"] for r in rows):
            pts = [(row_value(r, x), row_value(r, y), r) for r in rows
                   if r["intervention"] == label and r["samples_per_class"] == n]
            pts = [p for p in pts if p[0] is not None and p[1] is not None]
            seeds = [p[2]["seed"] for p in pts] if within_seed else None
            out.append((label, n, correlate([p[0] for p in pts], [p[1] for p in pts], seeds), pts))
    return out


def transfer_analysis(root: str | Path) -> list[Path]:
    """Write the correlation a transfer recipe's ``analysis`` asks for (``recipe.yaml`` in ``root``) from
    ``root/results.jsonl``; returns the files written (none without a correlation)."""
    from plasticlab.transfer.pipeline import read_results

    root = Path(root)
    meta = yaml.safe_load((root / "recipe.yaml").read_text()) or {}
    corr = (meta.get("analysis") or {}).get("correlation")
    if not corr:
        return []
    x, y = corr["x"], corr["y"]
    rows = read_results(root)
    groups = transfer_correlations(rows, x, y)
    within = transfer_correlations(rows, x, y, within_seed=True)
    body = [[kind, label, "all" if n is None else str(n), str(c.n), fmt_corr(c.r, c.r_ci), fmt_corr(c.rho, c.rho_ci)]
            for kind, part in (("pooled", groups), ("within seed", within)) for label, n, c, _ in part]
    head = ["models", "intervention", "N", "n", "Pearson r [95% CI]", "Spearman ρ [95% CI]"]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [f"correlation across pre-trained models of {y} (after fine-tuning) with {x}",
             "(95% CIs by Fisher's z: Pearson variance 1/(n−3), Spearman (1 + ρ²/2)/(n−3); within seed: x and y",
             "(ranks for ρ) centred on their seed's mean, n − (seeds − 1) in place of n)", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *body]]
    lines.insert(5, "  ".join("-" * w for w in widths))
    (root / "correlation.txt").write_text("\n".join(lines) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["models", "intervention", "samples_per_class", "x", "y", "n", "pearson_r", "pearson_lo",
                "pearson_hi", "spearman_rho", "spearman_lo", "spearman_hi"])
    for kind, label, n, c in [("pooled", *g[:3]) for g in groups] + [("within seed", *g[:3]) for g in within]:
        w.writerow([kind, label, "" if n is None else n, x, y, c.n,
                    *(("" if v is None else v) for v in (c.r, *(c.r_ci or (None, None)),
                                                         c.rho, *(c.rho_ci or (None, None))))])
    (root / "correlation.csv").write_text(buf.getvalue())
    panels = [(f"{label}, N={'all' if n is None else n}", [p[0] for p in pts], [p[1] for p in pts], c.r)
              for label, n, c, pts in groups if pts]
    written = [root / "correlation.txt", root / "correlation.csv"]
    if panels and scatter(root / "correlation.png", panels, x, y):
        written.append(root / "correlation.png")
    return written


def scatter(path: Path, panels: list[tuple[str, list[float], list[float], float | None]], xlabel: str,
            ylabel: str) -> bool:
    """One scatter panel per (title, xs, ys, r), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (title, xs, ys, r) in zip(axes[0], panels, strict=True):
        ax.scatter(xs, ys, s=18)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(", ".join(t for t in (title, "" if r is None else f"r = {r:.3f}") if t))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
