"""Generated tables in ``docs/reproduction.md``, rebuilt from the committed outputs.

A block in the doc::

    <!-- generated: quickstart headline -->
    (anything: replaced)
    <!-- end generated -->

is regenerated from ``reproduction/<NAME>/`` (next to the doc) by ``refresh``. Kinds:

- ``headline``: from ``tables.csv`` and ``paired.csv`` of a sweep recipe, on the recipe's
  ``measure`` (``recipe.yaml``): one row per group with its grid values, n, the final task's mean ±
  95% CI, the mean over the last five tasks ± 95% CI, and the paired differences from the baseline
  group on both scopes (mean [95% CI]);
- ``table``: a transfer recipe's ``table.txt``, verbatim in a code block (``table:N``: its first N tables);
- ``correlation``: a transfer recipe's ``correlation.txt`` (its ``analysis``), verbatim in a code block;
- ``final:m1,m2,…``: those measures (diagnostics too) at each group's final task, mean ± 95% CI.

``plasticlab recipes reproduce`` refreshes the blocks after writing outputs; ``--docs-only`` refreshes
them alone. A test checks that the committed doc equals its refreshed self, so a number edited by
hand fails it.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import yaml

from plasticlab.registry import UserError

BLOCK = re.compile(r"(?P<open><!-- generated: (?P<name>\S+) (?P<kind>\S+) -->\n)(?P<body>.*?)"
                   r"(?P<close><!-- end generated -->)", re.S)
KINDS = ("headline", "table", "correlation")


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"generated table: {path} is missing (run `plasticlab recipes reproduce` for its recipe)")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _num(cell: str | None) -> float | None:
    return float(cell) if cell not in (None, "") else None


def _estimate(row: dict | None, measure: str) -> str:
    from plasticlab.report.stats import Estimate, measure_range
    from plasticlab.report.tables import fmt

    if row is None:
        return "—"
    return fmt(Estimate(_num(row["mean"]), _num(row["ci_half"]), int(row["n"] or 0), measure_range(measure)))


def _delta(row: dict | None) -> str:
    if row is None or _num(row.get("mean_diff")) is None:
        return "—"
    mean, low, high = (_num(row.get(k)) for k in ("mean_diff", "ci_low", "ci_high"))
    return f"{mean:+.3f}" + ("" if low is None else f" [{low:+.3f}, {high:+.3f}]")


def headline(folder: Path, name: str | None = None) -> str:
    """The headline table (markdown) of the sweep recipe outputs in ``folder``."""
    measure = (yaml.safe_load((folder / "recipe.yaml").read_text()) or {}).get("measure") \
        if (folder / "recipe.yaml").is_file() else None
    rows = [r for r in _read_csv(folder / "tables.csv") if r["measure"] == measure]
    if not rows:
        raise UserError(f"generated table: {folder / 'tables.csv'} has no rows of the recipe's measure {measure!r}")
    head = list(rows[0])
    keys = head[head.index("group") + 1:head.index("measure")]
    by_scope = {(r["scope"], r["group"]): r for r in rows}
    paired = {(r.get("scope") or "final", r["group"]): r for r in _read_csv(folder / "paired.csv")
              if r["measure"] == measure}
    baselines = sorted({r["baseline"] for r in paired.values()})
    groups = [r["group"] for r in rows if r["scope"] == "final"]
    header = [k.split(".")[-1] for k in keys] + ["n", f"{measure}, final task", f"{measure}, last 5 tasks",
                                                 "Δ last 5 vs baseline [95% CI]", "Δ final vs baseline [95% CI]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in groups:
        final = by_scope[("final", g)]
        deltas = ["baseline"] * 2 if g in baselines else [_delta(paired.get((s, g))) for s in ("last5", "final")]
        cells = [final[k] or "—" for k in keys] + [final["n"], _estimate(final, measure),
                                            _estimate(by_scope.get(("last5", g)), measure), *deltas]
        lines.append("| " + " | ".join(cells) + " |")
    task = rows[0]["final_task"]
    note = (f"Generated from `reproduction/{name or folder.name}/` (tables.csv, paired.csv) by "
            "`plasticlab recipes reproduce`: "
            f"{measure}, mean ± 95% t-interval over seeds at the final task ({task}) and over the last 5 tasks; "
            f"Δ: paired by seed against the baseline ({', '.join(baselines) or 'none'}).")
    return "\n".join(lines) + "\n\n" + note + "\n"


def table(folder: Path, blocks: int | None = None, file: str = "table.txt") -> str:
    """A transfer recipe's ``table.txt`` (or ``correlation.txt``) in a code block (its first ``blocks``
    blank-line-separated tables)."""
    path = folder / file
    if not path.is_file():
        raise UserError(f"generated table: {path} is missing (a `table` block needs a transfer recipe's outputs)")
    text = path.read_text().rstrip("\n")
    if blocks is not None:
        text = "\n\n".join(text.split("\n\n")[:blocks])
    return "```\n" + text + "\n```\n"


def final_values(folder: Path, measures: list[str], name: str | None = None) -> str:
    """Several measures at each group's final task (mean ± 95% CI), one column each (``final:m1,m2``)."""
    rows = [r for r in _read_csv(folder / "tables.csv") if r["scope"] == "final"]
    found = {r["measure"] for r in rows}
    missing = [m for m in measures if m not in found]
    if missing or not measures:
        raise UserError(f"generated table: {folder / 'tables.csv'} has no final-task rows of {', '.join(missing)} "
                        f"(it has: {', '.join(sorted(found))})")
    head = list(rows[0])
    keys = head[head.index("group") + 1:head.index("measure")]
    by = {(r["group"], r["measure"]): r for r in rows}
    groups = list(dict.fromkeys(r["group"] for r in rows))
    header = [k.split(".")[-1] for k in keys] + ["n", *measures]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in groups:
        first = by[(g, measures[0])]
        cells = [first[k] or "—" for k in keys] + [first["n"]] + [_estimate(by.get((g, m)), m) for m in measures]
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"Generated from `reproduction/{name or folder.name}/tables.csv` by `plasticlab recipes reproduce`: "
            f"mean ± 95% t-interval over seeds at the final task ({rows[0]['final_task']}).")
    return "\n".join(lines) + "\n\n" + note + "\n"


def render(name: str, kind: str, folder: Path) -> str:
    """The body of block ``NAME KIND`` from ``folder/NAME`` (KIND: ``headline``, ``table`` or
    ``final:m1,m2,…``)."""
    if kind == "correlation":
        return table(folder / name, file="correlation.txt")
    if kind.startswith("table:") and kind[len("table:"):].isdigit():
        return table(folder / name, int(kind[len("table:"):]))
    if kind.startswith("final:"):
        return final_values(folder / name, [m for m in kind[len("final:"):].split(",") if m], name)
    if kind not in KINDS:
        raise UserError(f"generated table {name} {kind}: unknown kind {kind!r} "
                        f"(allowed: {', '.join(KINDS)}, table:N, final:MEASURE,…)")
    return headline(folder / name, name) if kind == "headline" else table(folder / name)


def refresh(text: str, folder: Path) -> str:
    """``text`` with every generated block rebuilt from the outputs under ``folder`` (``reproduction/``)."""
    opened = text.count("<!-- generated:")
    found = list(BLOCK.finditer(text))
    if opened != len(found) or text.count("<!-- end generated -->") != opened:
        raise UserError(f"generated tables: {opened} '<!-- generated: NAME KIND -->' markers but {len(found)} "
                        "complete blocks (each needs its '<!-- end generated -->' line)")
    return BLOCK.sub(lambda m: m["open"] + render(m["name"], m["kind"], folder) + m["close"], text)


def refresh_file(doc: str | Path) -> bool:
    """Rebuild the generated blocks of ``doc`` (its outputs in ``reproduction/`` beside it); True if it changed."""
    doc = Path(doc)
    if not doc.is_file():
        raise UserError(f"generated tables: {doc} does not exist (give the docs folder with --docs)")
    old = doc.read_text()
    new = refresh(old, doc.parent / "reproduction")
    if new != old:
        tmp = doc.with_name(f".{doc.name}.tmp-{os.getpid()}")
        tmp.write_text(new)
        tmp.replace(doc)
    return new != old
