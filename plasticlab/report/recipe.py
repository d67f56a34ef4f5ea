"""The recipe section of a report: the paper's claim and the recipe's analysis.

A sweep started from a recipe has ``recipe.yaml`` beside ``sweep.yaml``. Its ``analysis`` may ask
for a correlation across runs between two task-end values, written ``metric@task``::

    analysis: {correlation: {x: input_sensitivity@0, y: test_acc@1}}

reported as Pearson's r and Spearman's ρ (Pearson of ranks, ties averaged) with a scatter plot.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from plasticlab.report.runs import Collection


def parse_ref(ref: str) -> tuple[str, int]:
    metric, _, task = ref.partition("@")
    return metric, int(task) if task else -1


def value_at(task_ends: dict[int, dict], metric: str, task: int) -> float | None:
    if not task_ends:
        return None
    row = task_ends.get(task if task >= 0 else max(task_ends))
    v = None if row is None else row.get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def pearson(x: list[float], y: list[float]) -> float | None:
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


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
        r = pearson(xs, ys)
        rho = pearson(ranks(xs), ranks(ys)) if len(xs) >= 3 else None
        fmt = lambda v: "-" if v is None else f"{v:.3f}"
        blocks += [("h2", "Correlation across runs"),
                   ("table", ["x", "y", "runs", "Pearson r", "Spearman ρ"],
                    [[corr["x"], corr["y"], str(len(pairs)), fmt(r), fmt(rho)]])]
        if pairs and scatter(folder / "correlation.png", xs, ys, corr["x"], corr["y"], r):
            blocks.append(("img", "correlation.png", f"{corr['y']} against {corr['x']}"))
    return blocks


def scatter(path: Path, xs: list[float], ys: list[float], xlabel: str, ylabel: str, r: float | None) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(xs, ys, s=18)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"r = {r:.3f}" if r is not None else "")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
