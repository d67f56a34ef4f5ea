"""``reproduce``: re-run recipes and rewrite their committed outputs in ``docs/reproduction/``.

For each recipe, its profile runs as ``recipes.run`` does (into ``WORK/<name>-<profile>``;
resumable: finished runs are reused), then ``DOCS/reproduction/<name>/`` (``<name>-<profile>/`` for
a profile other than ``quick``) is rewritten from it:

- ``recipe.yaml``: the recipe's claim and the profile's name;
- sweep recipes: ``report.md``, ``tables.csv``, ``paired.csv`` and the PNG plots of the portable
  report (``plasticlab.report.make_report``), and ``runs.csv``: one row per run × finished task with
  the run id, its grid values, seed, task, the measures and the main diagnostics, floats written
  with ``repr`` so that a value read back is the same float;
- transfer recipes: ``table.txt``, ``results.csv`` and, when the recipe asks for a correlation,
  ``correlation.txt``/``.csv``/``.png``.

The folder is written next to its destination and renamed into place, so a failure leaves the old
one. Files the command does not write (an analysis script ``*.py`` and its figure) are carried over;
a file the command wrote before but not this time (a plot of a measure the runs no longer report) is
dropped. Then the generated blocks of ``DOCS/reproduction.md`` are refreshed
(``plasticlab.recipes.docs_tables``).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from pathlib import Path

from plasticlab.registry import UserError

REPORT_FILES = ("report.md", "tables.csv", "paired.csv")
TRANSFER_FILES = ("table.txt", "results.csv")
ANALYSIS_FILES = ("correlation.txt", "correlation.csv", "correlation.png")
"""A transfer recipe's ``analysis`` outputs (``plasticlab.report.recipe.transfer_analysis``)."""
OWNED = ("recipe.yaml", "runs.csv", *REPORT_FILES, *TRANSFER_FILES, *ANALYSIS_FILES, "curve_*.png",
         "diagnostics.png", "final_task.png", "accuracy_matrix.png")
"""Names (and patterns) the command writes; any other file in an output folder is the user's and is kept."""
DIAGNOSTICS = ("dormant_fraction", "dead_fraction", "frozen_fraction", "effective_rank", "input_sensitivity")
"""Diagnostics kept in ``runs.csv`` beside the measures (where the runs report them)."""


def output_dir(docs: str | Path, name: str, profile: str) -> Path:
    """``DOCS/reproduction/<name>`` for the quick profile, ``<name>-<profile>`` for another."""
    return Path(docs) / "reproduction" / (name if profile == "quick" else f"{name}-{profile}")


def reproduce(names: list[str], *, profile: str = "quick", work: str | Path = "sweeps", docs: str | Path = "docs",
              seeds: list[int] | None = None, **sweep_options) -> list[Path]:
    """Run each recipe's profile and rewrite its folder of committed outputs; refresh the doc's tables.

    Args:
        names: recipe names (``plasticlab recipes list``).
        profile: the recipes' profile (``quick``: CPU, minutes).
        work: where the sweeps run (``WORK/<name>-<profile>``; re-running reuses finished runs).
        docs: the documentation folder that holds ``reproduction/`` and ``reproduction.md``.
        seeds: a replication: run these seeds instead of the profile's, into
            ``WORK/<name>-<profile>-seeds-…`` and ``DOCS/reproduction/<name>/seeds-…/`` (the recipe's own
            outputs are kept; e.g. ``seeds-100-104``).
        sweep_options: passed to ``plasticlab.sweep.run_sweep`` (executor, workers, progress, …).
    Returns:
        The output folders written, in the order of ``names``.
    Raises:
        UserError: an unknown recipe or profile, or a docs folder that cannot be written; raised
            before anything runs.
    """
    from plasticlab import recipes
    from plasticlab.recipes import docs_tables

    if not names:
        raise UserError("recipes reproduce: name at least one recipe, or --all (see `plasticlab recipes list`)")
    specs = {name: recipes.with_seeds(recipes.sweep_of(name, profile), seeds) for name in names}  # UserError
    writable(Path(docs) / "reproduction")
    tail = "" if seeds is None else recipes.seeds_label(seeds)
    written = []
    for name, spec in specs.items():
        root = Path(work) / (f"{name}-{profile}" + (f"-{tail}" if tail else ""))
        recipes.run(name, profile=profile, out=root, report=False, seeds=seeds, **sweep_options)
        dest = output_dir(docs, name, profile) / tail if tail else output_dir(docs, name, profile)
        written.append(write_outputs(root, dest, transfer="transfer" in spec))
    if (Path(docs) / "reproduction.md").is_file():
        docs_tables.refresh_file(Path(docs) / "reproduction.md")
    return written


def writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be made in it (UserError otherwise)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise UserError(f"recipes reproduce: cannot write to {folder} ({e.strerror or e}); "
                        "choose another --docs folder") from None


def write_outputs(root: Path, dest: Path, *, transfer: bool) -> Path:
    """Rewrite ``dest`` from the finished sweep or transfer output ``root`` (see the module docstring)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)  # why: mkdtemp makes it 0700; the folder is a normal one once renamed
    try:
        shutil.copy2(root / "recipe.yaml", tmp / "recipe.yaml")
        if transfer:
            for f in TRANSFER_FILES:
                shutil.copy2(root / f, tmp / f)
            for f in ANALYSIS_FILES:  # written when the recipe asks for an analysis
                if (root / f).is_file():
                    shutil.copy2(root / f, tmp / f)
        else:
            _report_files(root, tmp)
            write_runs_csv(root, tmp / "runs.csv")
        if dest.exists():
            for item in dest.iterdir():
                if not any(fnmatch.fnmatch(item.name, p) for p in OWNED) and not (tmp / item.name).exists():
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        _swap(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def _report_files(root: Path, folder: Path) -> None:
    """The portable report of ``root``: its markdown, CSV tables and PNG plots, into ``folder``."""
    from plasticlab.report import make_report

    report = folder / ".report"
    make_report(root, out=report, portable=True)
    for item in sorted(report.iterdir()):
        if item.name in REPORT_FILES or item.suffix == ".png":
            item.rename(folder / item.name)
    shutil.rmtree(report)


def runs_rows(root: Path) -> tuple[list[dict], list[str]]:
    """``runs.csv``'s rows and columns for the sweep at ``root``: one row per run and finished task."""
    from plasticlab.report import runs, tables

    col = runs.load(root)
    found = {k for r in col.runs for rec in r.task_ends.values() for k in rec}
    values = [m for m in (*tables.MEASURES, *DIAGNOSTICS) if m in found]
    rows = []
    for r in col.runs:
        for t in sorted(r.task_ends):
            row = {"run": r.id, "seed": r.seed, "task": t}
            row.update({k: tables.label(r.point[k]) for k in col.keys if k in r.point})  # union grids: a key may lack
            row.update({m: r.task_ends[t].get(m) for m in values})
            rows.append(row)
    return rows, ["run", *col.keys, "seed", "task", *values]


def write_runs_csv(root: Path, path: Path) -> None:
    from plasticlab.report.tables import write_csv

    rows, columns = runs_rows(root)
    write_csv(path, rows, columns)


def _swap(tmp: Path, dest: Path) -> None:
    """Put ``tmp`` at ``dest``: the old folder is moved aside first and removed only once ``tmp`` is in place."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    try:
        tmp.rename(dest)
    except OSError:
        if old.exists():
            old.rename(dest)
        raise
    if old.exists():
        shutil.rmtree(old)
