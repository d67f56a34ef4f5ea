"""Reviewer-facing report sections: accuracy matrix, robust aggregates (IQM), verdict, provenance."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib import image

from plasticlab.report import make_report
from plasticlab.report.stats import iqm, iqm_ci


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def write_forgetting_run(path: Path, *, seed: int, matrix: list[list[float]], test: bool = True) -> None:
    """A run whose row t has past_task_acc {j: matrix[t][j]} for j < t and matrix[t][t] as its own accuracy."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "tasks": {"count": len(matrix)}}))
    (path / "provenance.json").write_text(json.dumps({"status": "done"}))
    rows = []
    for t, row in enumerate(matrix):
        past = {str(j): row[j] for j in range(t)}
        rec = {"event": "task_end", "task": t, "train_acc": 0.99, "test_acc": row[t] if test else None,
               "past_task_acc": past, "mean_past_acc": sum(past.values()) / t if t else None}
        if not test:
            rec["train_acc"] = row[t]
        rows.append(rec)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_accuracy_matrix_csv_and_heatmap(tmp_path):
    root = tmp_path / "runs"
    write_forgetting_run(root / "a", seed=0, matrix=[[0.9], [0.5, 0.8], [0.3, 0.4, 0.7]])
    write_forgetting_run(root / "b", seed=1, matrix=[[0.7], [0.3, 0.6], [0.1, 0.2, 0.5]])
    out = make_report(root)
    cells = {(int(r["trained"]), int(r["evaluated"])): r for r in read_csv(out / "accuracy_matrix.csv")}
    assert set(cells) == {(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)}  # j ≤ t only
    assert float(cells[(0, 0)]["acc"]) == pytest.approx(0.8)  # diagonal: test_acc, mean over seeds
    assert float(cells[(2, 0)]["acc"]) == pytest.approx(0.2) and cells[(2, 0)]["n"] == "2"
    assert float(cells[(2, 1)]["acc"]) == pytest.approx(0.3)
    md = (out / "report.md").read_text()
    assert "## Accuracy matrix" in md and "accuracy_matrix.png" in md
    img = image.imread(out / "accuracy_matrix.png")
    assert np.unique(img[..., :3].reshape(-1, 3), axis=0).shape[0] > 20
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(list(out.glob("*.png")))


def test_accuracy_matrix_diagonal_falls_back_to_train_acc(tmp_path):
    write_forgetting_run(tmp_path / "run", seed=0, matrix=[[0.9], [0.2, 0.95]], test=False)
    out = make_report(tmp_path / "run")
    cells = {(int(r["trained"]), int(r["evaluated"])): float(r["acc"]) for r in read_csv(out / "accuracy_matrix.csv")}
    assert cells == {(0, 0): 0.9, (1, 0): 0.2, (1, 1): 0.95}


def test_no_accuracy_matrix_without_past_task_acc(tmp_path):
    write_forgetting_run(tmp_path / "run", seed=0, matrix=[[0.9], [0.2, 0.95]])
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    stripped = [{k: v for k, v in json.loads(x).items() if k != "past_task_acc"} for x in lines]
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stripped))
    out = make_report(tmp_path / "run")
    assert not (out / "accuracy_matrix.csv").exists() and "Accuracy matrix" not in (out / "report.md").read_text()


def test_iqm_of_known_sample():
    # 8 values: drop 2 at each end → mean of 3, 4, 5, 6
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4, float("nan"), None]) == pytest.approx(4.5)
    assert iqm([1, 2, 3]) == pytest.approx(2.0)  # ⌊0.75⌋ = 0 dropped: the mean
    assert iqm([]) is None


def test_iqm_bootstrap_interval_is_deterministic_and_contains_the_iqm():
    xs = [0.61, 0.7, 0.52, 0.66, 0.58, 0.73, 0.49, 0.64]
    a, b = iqm_ci(xs), iqm_ci(xs)
    assert a == b and a.n == 8
    assert a.low < a.iqm < a.high
    assert iqm_ci([0.5]).low is None and iqm_ci([0.5]).iqm == 0.5
    clipped = iqm_ci([0.0, 0.0, 0.0, 0.05, 0.0, 0.4], bounds=(0.0, 1.0))
    assert clipped.low == 0.0  # never below the measure's range


def test_iqm_columns_in_tables_csv(tmp_path):
    from tests.report.test_make import FULL, write_sweep

    out = make_report(write_sweep(tmp_path / "sw", FULL))
    est = {(r["scope"], r["optim.lr"], r["measure"]): r for r in read_csv(out / "tables.csv")}
    final = est[("final", "0.1", "train_acc")]  # 0.5, 0.6, 0.7: n = 3, nothing trimmed
    assert float(final["iqm"]) == pytest.approx(0.6)
    assert 0.5 <= float(final["iqm_low"]) <= 0.6 <= float(final["iqm_high"]) <= 0.7
    assert "Robust aggregates at the final task" in (out / "report.md").read_text()


def write_grid_sweep(root: Path, values: dict[tuple[str, int], float], recipe: dict | None = None) -> Path:
    """A sweep over ``method`` (grid order: none, shrink, l2) whose runs end at test_acc = values[(method, seed)]."""
    from tests.report.test_make import write_run

    root.mkdir()
    (root / "sweep.yaml").write_text(yaml.safe_dump({"base": {"optim": {"lr": 0.1}}, "seeds": [0, 1, 2],
                                                     "grid": {"method": ["none", "shrink", "l2"]}}))
    index = []
    for (method, seed), acc in values.items():
        rid = f"{method}-s{seed}"
        index.append({"id": rid, "path": f"runs/{rid}", "seed": seed, "point": {"method": method}})
        write_run(root / "runs" / rid, seed=seed, lr=0.1, accs=[0.9, acc + 0.1])  # test_acc = acc at task 1
        cfg = yaml.safe_load((root / "runs" / rid / "config.yaml").read_text())
        (root / "runs" / rid / "config.yaml").write_text(yaml.safe_dump({**cfg, "method": {"name": method}}))
    (root / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in index))
    if recipe:
        (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root


def test_verdict_paired_by_seed_against_the_first_grid_values(tmp_path):
    from plasticlab.report.stats import mean_ci

    values = {("shrink", 0): 0.62, ("none", 0): 0.50, ("l2", 0): 0.48,
              ("shrink", 1): 0.71, ("none", 1): 0.60, ("l2", 1): 0.61,
              ("shrink", 2): 0.43, ("none", 2): 0.30, ("l2", 2): 0.29}
    root = write_grid_sweep(tmp_path / "sw", values,
                            recipe={"name": "x", "claim": "Shrinking helps.", "measure": "test_acc"})
    out = make_report(root)
    rows = {r["group"]: r for r in read_csv(out / "paired.csv") if r["scope"] == "final"}
    assert set(rows) == {"method=shrink", "method=l2"}  # the baseline (none: first grid value) is not compared
    diffs = [0.12, 0.11, 0.13]  # shrink − none per seed: consistent, although the seeds differ a lot
    e = mean_ci(diffs, bounds=(-1.0, 1.0))
    assert float(rows["method=shrink"]["mean_diff"]) == pytest.approx(e.mean)
    assert float(rows["method=shrink"]["ci_low"]) == pytest.approx(e.low) and e.low > 0
    assert rows["method=shrink"]["verdict"] == "better at 95%" and rows["method=shrink"]["n"] == "3"
    assert rows["method=l2"]["verdict"] == "no difference at 95%"  # −0.02, +0.01, −0.01
    assert rows["method=shrink"]["baseline"] == "method=none" and rows["method=shrink"]["task"] == "1"
    md = (out / "report.md").read_text()
    assert md.index("## Verdict") < md.index("## Final task")
    assert "Claim (source not given): Shrinking helps." in md
    assert "first value of each grid key in sweep.yaml (method=none)" in md
    assert f"> method=shrink vs baseline method=none: test_acc at task 1 +{e.mean:.3f}" in md
    assert "better at 95%" in (out / "report.html").read_text()


def test_verdict_worse_for_a_loss_and_no_verdict_with_one_seed(tmp_path):
    values = {("none", 0): 0.5, ("shrink", 0): 0.3, ("none", 1): 0.6, ("shrink", 1): 0.41, ("l2", 0): 0.9}
    root = write_grid_sweep(tmp_path / "sw", values, recipe={"name": "x", "measure": "train_loss"})
    rows = {r["group"]: r for r in read_csv(make_report(root) / "paired.csv") if r["scope"] == "final"}
    # train_loss = 1 − train_acc = 1 − (acc + 0.1): shrink's loss is higher by 0.2, 0.19 → worse (lower is better)
    assert rows["method=shrink"]["measure"] == "train_loss" and rows["method=shrink"]["verdict"] == "worse at 95%"
    assert rows["method=l2"]["verdict"].startswith("no verdict")  # one paired seed


def test_single_group_has_no_verdict(tmp_path):
    from tests.report.test_make import write_run

    write_run(tmp_path / "run", seed=0, lr=0.1, accs=[0.5, 0.6])
    out = make_report(tmp_path / "run")
    assert "Verdict" not in (out / "report.md").read_text() and not (out / "paired.csv").exists()


def test_provenance_config_and_run_links(tmp_path):
    values = {("none", 0): 0.5, ("shrink", 0): 0.6, ("none", 1): 0.55, ("shrink", 1): 0.65}
    root = write_grid_sweep(tmp_path / "sw", values)
    for run in (root / "runs").iterdir():
        commit = "abc123" if run.name != "shrink-s1" else "def456"
        (run / "provenance.json").write_text(json.dumps({"status": "done", "git": commit, "torch": "2.5.0",
                                                         "plasticlab": "0.3.0", "python": "3.12.1"}))
    out = make_report(root)
    md = (out / "report.md").read_text()
    assert "## Configuration and provenance" in md and "Base configuration (sweep.yaml):" in md
    assert "```\nbase:\n  optim:\n    lr: 0.1\n" in md  # the sweep.yaml text
    assert "| torch | 2.5.0 |" in md and "| git | abc123 (3 runs); def456 (1 runs) |" in md
    assert "[none-s0](../runs/none-s0)" in md and "[shrink-s1](../runs/shrink-s1)" in md
    links = "[shrink-s0](../runs/shrink-s0), [shrink-s1](../runs/shrink-s1)"
    assert f"| method=shrink | {links} | method.name=shrink |" in md
    html = (out / "report.html").read_text()
    assert '<a href="../runs/none-s0">none-s0</a>' in html and "<pre>base:" in html
    # a report written elsewhere links back to the runs
    other = make_report(root, out=tmp_path / "elsewhere" / "rep")
    assert "[none-s0](../../sw/runs/none-s0)" in (other / "report.md").read_text()
    assert (other / "../../sw/runs/none-s0/config.yaml").is_file()


def test_collection_report_lists_differing_keys(tmp_path):
    from tests.report.test_make import write_run

    write_run(tmp_path / "res" / "a", seed=0, lr=0.1, accs=[0.5])
    write_run(tmp_path / "res" / "b", seed=0, lr=0.01, accs=[0.6])
    md = (make_report(tmp_path / "res") / "report.md").read_text()
    assert "Base configuration (a/config.yaml):" in md
    assert "| lr=0.1 | [a](../a) | optim.lr=0.1 |" in md


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs chromium or chromium-browser on PATH")
def test_report_html_renders_headless(tmp_path):
    import subprocess

    values = {("none", 0): 0.5, ("shrink", 0): 0.6, ("none", 1): 0.55, ("shrink", 1): 0.65}
    out = make_report(write_grid_sweep(tmp_path / "sw", values))
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1200,2000", f"--screenshot={shot}", (out / "report.html").resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 1000
    img = image.imread(shot)
    assert np.unique(img[..., :3].reshape(-1, 3), axis=0).shape[0] > 20  # text, tables, figures: not blank
