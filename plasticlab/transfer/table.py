"""Text tables of transfer results: accuracy per (intervention, N), paired differences to ``none``,
and the diagnostics at each stage.

A cell is mean ± h over seeds, with h the half-width of the 95% Student-t confidence interval,
h = t₀.₉₇₅(n−1)·sd/√n (sd with n−1 in the denominator); just the mean when n = 1.
"""

from __future__ import annotations

import math

from plasticlab.sweep.spec import describe

T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
"""t₀.₉₇₅ quantiles for 1…30 degrees of freedom (1.96 beyond)."""


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """(mean, 95% CI half-width or None for a single value) of finite ``values``; (nan, None) if none."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return math.nan, None
    m = sum(v) / len(v)
    if len(v) == 1:
        return m, None
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    t = T975[len(v) - 2] if len(v) - 1 <= len(T975) else 1.96
    return m, t * sd / math.sqrt(len(v))


def cell(values: list[float], digits: int = 3) -> str:
    m, h = mean_ci(values)
    if math.isnan(m):
        return "-"
    return f"{m:.{digits}f}" if h is None else f"{m:.{digits}f} ± {h:.{digits}f}"


def _n(v) -> str:
    return "all" if v is None else str(v)


def _grid(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _stage(r: dict, stage: str, key: str):
    return (r.get(stage) or {}).get(key)


def format_tables(rows: list[dict]) -> str:
    """Target test accuracy (intervention × N), its paired difference to ``none`` (when present), and
    per-(intervention, N) diagnostics; with a ``source_grid``, these tables once per grid point."""
    points = list(dict.fromkeys(describe(r["grid"]) for r in rows if r.get("grid")))
    if points:
        return "\n\n".join(f"source {p}:\n" + format_tables([{**r, "grid": None} for r in rows
                                                              if r.get("grid") and describe(r["grid"]) == p])
                           for p in points)
    labels = list(dict.fromkeys(r["intervention"] for r in rows))
    ns = list(dict.fromkeys(r["samples_per_class"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})

    def pick(label, n):
        return [r for r in rows if r["intervention"] == label and r["samples_per_class"] == n]

    acc = [[lab] + [cell([r["test_acc"] for r in pick(lab, n)]) for n in ns] for lab in labels]
    out = [f"target test accuracy (mean ± 95% CI over {len(seeds)} seed{'s' * (len(seeds) != 1)}; "
           "columns: N training images per class)",
           _grid(["intervention"] + [f"N={_n(n)}" for n in ns], acc), ""]
    if "none" in labels and len(labels) > 1:
        diff = []
        for lab in labels:
            if lab == "none":
                continue
            cells = []
            for n in ns:
                base = {r["seed"]: r["test_acc"] for r in pick("none", n)}
                cells.append(cell([r["test_acc"] - base[r["seed"]] for r in pick(lab, n)
                                   if r["test_acc"] is not None and base.get(r["seed"]) is not None]))
            diff.append([lab, *cells])
        out += ["difference to none, paired by seed (mean ± 95% CI)",
                _grid(["intervention"] + [f"N={_n(n)}" for n in ns], diff), ""]

    head = ["intervention", "N", "test_acc", "before_ft", "changed", "frozen_pre", "dead_pre", "frozen_int",
            "frozen_ft", "sens_int", "sens_ft"]
    body = []
    for lab in labels:
        for n in ns:
            rs = pick(lab, n)
            body.append([lab, _n(n), cell([r["test_acc"] for r in rs]),
                         cell([_stage(r, "intervened", "test_acc") for r in rs]),
                         cell([r["changed_fraction"] for r in rs]),
                         cell([_stage(r, "pretrained", "frozen_fraction") for r in rs]),
                         cell([_stage(r, "pretrained", "dead_fraction") for r in rs]),
                         cell([_stage(r, "intervened", "frozen_fraction") for r in rs]),
                         cell([_stage(r, "finetuned", "frozen_fraction") for r in rs]),
                         cell([_stage(r, "intervened", "input_sensitivity") for r in rs], 2),
                         cell([_stage(r, "finetuned", "input_sensitivity") for r in rs], 2)])
    out += ["diagnostics (before_ft: target test accuracy of the intervened model before fine-tuning; changed: "
            "share of hidden units the intervention changed; frozen_*: frozen_fraction after pre-training "
            "(source probe), after the intervention and after fine-tuning; dead_pre: dead_fraction after "
            "pre-training (source probe); sens_*: input_sensitivity on the target probe)", _grid(head, body)]
    return "\n".join(out)
