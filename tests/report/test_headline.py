"""Headline measures on constructed sweeps whose answers are known: the last-5-tasks scope, paired
differences in both scopes, a recipe-declared baseline, union grids ("—" for a key a point lacks) and
portable (byte-identical) reports."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from plasticlab.report import make_report
from plasticlab.report.stats import mean_ci
from plasticlab.sweep import load_sweep

T2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # t_{0.975, 2} in closed form


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def write_sweep(root: Path, grid: dict | list, accs: dict[tuple[int, int], list[float]], seeds: list[int],
                recipe: dict | None = None, family: str = "permuted-pixels") -> list:
    """A sweep directory as the driver writes it (sweep.yaml, runs.jsonl from ``load_sweep(...).points()``);
    the run of grid point i and seed s has test_acc = accs[(i, s)][t] at task t. Returns the points."""
    spec = load_sweep({"base": {"tasks": {"family": family, "count": 7}}, "grid": grid, "seeds": seeds})
    points = spec.points()
    n = len(points) // len(seeds)
    root.mkdir()
    (root / "sweep.yaml").write_text(yaml.safe_dump(spec.as_dict(), sort_keys=False))
    index = []
    for k, p in enumerate(points):
        index.append({"id": p.id, "path": f"runs/{p.id}", "seed": p.seed, "point": p.values})
        run = root / "runs" / p.id
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(p.config))
        (run / "provenance.json").write_text(json.dumps({"status": "done", "host": "node-17", "torch": "2.13.0"}))
        rows = [{"event": "task_end", "task": t, "test_acc": a} for t, a in enumerate(accs[(k % n, p.seed)])]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in index))
    if recipe:
        (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return points


LR = {"optim.lr": [0.1, 0.01]}
# 7 tasks: the last-5 window is tasks 2..6
ACCS = {
    (0, 0): [0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.4],   # window mean 0.48
    (0, 1): [0.9, 0.9, 0.6, 0.6, 0.6, 0.6, 0.5],   # 0.58
    (0, 2): [0.9, 0.9, 0.7, 0.7, 0.7, 0.7, 0.6],   # 0.68
    (1, 0): [0.1, 0.1, 0.6, 0.6, 0.6, 0.6, 0.6],   # 0.60: − baseline = 0.12
    (1, 1): [0.1, 0.1, 0.7, 0.7, 0.7, 0.7, 0.7],   # 0.70: 0.12
    (1, 2): [0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9],   # 0.90: 0.22
}


def test_last5_scope_is_the_mean_over_the_last_five_tasks(tmp_path):
    write_sweep(tmp_path / "sw", LR, ACCS, [0, 1, 2])
    out = make_report(tmp_path / "sw")
    est = {(r["scope"], r["optim.lr"]): r for r in read_csv(out / "tables.csv") if r["measure"] == "test_acc"}
    assert [r["scope"] for r in read_csv(out / "tables.csv")][::2] == ["final", "mean_over_tasks", "last5"]
    last5 = est[("last5", "0.1")]  # per run 0.48, 0.58, 0.68 (tasks 2..6; tasks 0, 1 left out)
    assert float(last5["mean"]) == pytest.approx(0.58) and int(last5["n"]) == 3
    assert float(last5["ci_half"]) == pytest.approx(T2 * 0.1 / math.sqrt(3))
    assert float(est[("final", "0.1")]["mean"]) == pytest.approx(0.5)
    assert float(est[("mean_over_tasks", "0.1")]["mean"]) == pytest.approx((4.2 + 4.7 + 5.2) / 3 / 7)
    md = (out / "report.md").read_text()
    assert md.index("## Final task") < md.index("## Mean over the last 5 tasks") < md.index("## Mean over tasks")
    assert f"| 0.1 | 2–6 | 3 | 0.58 ± {T2 * 0.1 / math.sqrt(3):.2f} |" in md


def test_last5_window_is_shorter_when_fewer_tasks_are_done(tmp_path):
    short = {k: v[:3] for k, v in ACCS.items()}  # T = 2: min(5, 3) = 3 tasks, 0..2
    write_sweep(tmp_path / "sw", LR, short, [0, 1, 2])
    est = {(r["scope"], r["optim.lr"]): r for r in read_csv(make_report(tmp_path / "sw") / "tables.csv")}
    assert float(est[("last5", "0.01")]["mean"]) == pytest.approx((0.8 + 0.9 + 1.1) / 9)
    assert float(est[("last5", "0.1")]["mean"]) == pytest.approx((2.3 + 2.4 + 2.5) / 9)


def test_paired_differences_in_both_scopes(tmp_path):
    write_sweep(tmp_path / "sw", LR, ACCS, [0, 1, 2])
    out = make_report(tmp_path / "sw")
    rows = {r["scope"]: r for r in read_csv(out / "paired.csv")}
    assert set(rows) == {"final", "last5"} and all(r["group"] == "lr=0.01" for r in rows.values())
    final = mean_ci([0.2, 0.2, 0.3], bounds=(-1.0, 1.0))  # task 6: 0.6−0.4, 0.7−0.5, 0.9−0.6
    last5 = mean_ci([0.12, 0.12, 0.22], bounds=(-1.0, 1.0))  # the runs' means over tasks 2..6
    for scope, e in (("final", final), ("last5", last5)):
        assert float(rows[scope]["mean_diff"]) == pytest.approx(e.mean)
        assert float(rows[scope]["ci_low"]) == pytest.approx(e.low) and rows[scope]["n"] == "3"
    assert rows["last5"]["first_task"] == "2" and rows["last5"]["task"] == "6" and rows["final"]["first_task"] == "6"
    assert last5.low > 0 and rows["last5"]["verdict"] == "better at 95%" and rows["last5"]["baseline"] == "lr=0.1"
    md = (out / "report.md").read_text()
    assert f"> lr=0.01 vs baseline lr=0.1: test_acc at task 6 +{final.mean:.3f}" in md
    assert f"> lr=0.01 vs baseline lr=0.1: test_acc mean over tasks 2–6 +{last5.mean:.3f}" in md


KIND_K = {"environment.kind": ["abrupt", "input-interpolation"], "tasks.count": [4, 7]}
# grid order: (abrupt, 4), (abrupt, 7), (ii, 4), (ii, 7); final task value per seed, all tasks alike
LEVEL = {0: 0.5, 1: 0.6, 2: 0.7, 3: 0.9}


def _flat(level_by_point: dict[int, float], shift: dict[int, float]) -> dict[tuple[int, int], list[float]]:
    return {(i, s): [v + shift[s]] * 7 for i, v in level_by_point.items() for s in (0, 1)}


def test_recipe_baseline_pairs_each_group_with_its_own_k(tmp_path):
    accs = _flat(LEVEL, {0: 0.0, 1: 0.05})
    recipe = {"name": "x", "measure": "test_acc", "baseline": {"environment.kind": "abrupt"}}
    write_sweep(tmp_path / "sw", KIND_K, accs, [0, 1], recipe)
    out = make_report(tmp_path / "sw")
    rows = {(r["group"], r["scope"]): r for r in read_csv(out / "paired.csv")}
    # abrupt@4 and abrupt@7 are their own baselines: not compared
    assert {g for g, _ in rows} == {"kind=input-interpolation, count=4", "kind=input-interpolation, count=7"}
    ii7 = rows[("kind=input-interpolation, count=7", "final")]
    assert ii7["baseline"] == "kind=abrupt, count=7" and ii7["baseline_by"] == "recipe"
    assert float(ii7["mean_diff"]) == pytest.approx(0.9 - 0.6)
    ii4 = rows[("kind=input-interpolation, count=4", "final")]
    assert ii4["baseline"] == "kind=abrupt, count=4" and float(ii4["mean_diff"]) == pytest.approx(0.2)
    assert float(rows[("kind=input-interpolation, count=7", "last5")]["mean_diff"]) == pytest.approx(0.3)
    md = (out / "report.md").read_text()
    assert "> kind=input-interpolation, count=7 vs baseline kind=abrupt, count=7 (recipe): test_acc at task 6" in md


def test_recipe_baseline_falls_back_to_the_first_point(tmp_path):
    accs = _flat(LEVEL, {0: 0.0, 1: 0.05})
    recipe = {"name": "x", "baseline": {"environment.kind": "task-sampling"}}  # no such group
    write_sweep(tmp_path / "sw", KIND_K, accs, [0, 1], recipe)
    rows = [r for r in read_csv(make_report(tmp_path / "sw") / "paired.csv") if r["scope"] == "final"]
    assert [r["group"] for r in rows] == ["kind=abrupt, count=7", "kind=input-interpolation, count=4",
                                          "kind=input-interpolation, count=7"]
    assert {r["baseline"] for r in rows} == {"kind=abrupt, count=4"}
    assert rows[0]["baseline_by"] == 'first point (no group with environment.kind="task-sampling")'


UNION = [
    {"environment.kind": ["abrupt"], "method": [{"name": "none"}, {"name": "l2", "coef": 1.0e-3}]},
    {"environment.kind": ["output-interpolation"], "environment.transition.mode": ["direct", "via-uniform"]},
    {"environment.kind": ["task-sampling"]},
]


def test_union_grid_report_shows_a_dash_for_missing_keys(tmp_path):
    accs = {(i, s): [0.5 + 0.05 * i + 0.01 * s] * 7 for i in range(5) for s in (0, 1)}
    points = write_sweep(tmp_path / "sw", UNION, accs, [0, 1], family="random-labels")
    assert points[4].values == {"environment.kind": "task-sampling"}
    out = make_report(tmp_path / "sw")
    md = (out / "report.md").read_text()
    assert "group keys: environment.kind, method, environment.transition.mode;" in md
    assert "| kind | method | mode | task | n | test_acc |" in md
    assert "| abrupt | l2(coef=0.001) | — | 6 | 2 |" in md
    assert "| output-interpolation | — | via-uniform | 6 | 2 |" in md and "| task-sampling | — | — | 6 | 2 |" in md
    est = {(r["scope"], r["group"]): r for r in read_csv(out / "tables.csv") if r["measure"] == "test_acc"}
    assert len(est) == 3 * 5
    ts = est[("final", "kind=task-sampling")]
    assert ts["method"] == "" and ts["environment.transition.mode"] == "" and float(ts["mean"]) == pytest.approx(0.705)
    rows = {r["group"]: r for r in read_csv(out / "paired.csv") if r["scope"] == "final"}
    assert set(rows) == {"kind=abrupt, method=l2(coef=0.001)", "kind=output-interpolation, mode=direct",
                         "kind=output-interpolation, mode=via-uniform", "kind=task-sampling"}
    assert {r["baseline"] for r in rows.values()} == {"kind=abrupt, method=none"}
    assert float(rows["kind=task-sampling"]["mean_diff"]) == pytest.approx(0.2)
    assert "the first point of the first grid mapping in sweep.yaml (kind=abrupt, method=none)" in md
    assert (out / "curve_test_acc.png").is_file()


def test_portable_report_is_byte_identical_and_names_no_machine(tmp_path):
    write_sweep(tmp_path / "sw", LR, ACCS, [0, 1, 2])
    a = make_report(tmp_path / "sw", tmp_path / "a", portable=True)
    files = ("report.md", "tables.csv", "paired.csv", "summary.csv")
    first = {f: (a / f).read_bytes() for f in files}
    b = make_report(tmp_path / "sw", tmp_path / "elsewhere" / "b", portable=True)
    assert {f: (b / f).read_bytes() for f in files} == first
    md = first["report.md"].decode()
    assert str(tmp_path) not in md and "generated" not in md and "node-17" not in md
    assert "| torch | 2.13.0 |" in md and "sweep at sw —" in md
    assert "runs/lr=0.1-s0-" in md
    plain = (make_report(tmp_path / "sw") / "report.md").read_text()
    assert str(tmp_path) in plain and "node-17" in plain and "generated" in plain
