"""make_report on synthetic run directories: numbers against hand-computed means and CIs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib import image

from plasticlab.registry import UserError
from plasticlab.report import make_report
from plasticlab.report.stats import mean_ci

# t_{0.975, 2} in closed form: for 2 degrees of freedom t_p = (2p − 1) / sqrt(2 p (1 − p)).
T2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)


def write_run(path: Path, *, seed: int, lr: float, accs: list[float], status: str = "done", count: int = 3):
    """A run directory in the store's format with one task_end per value in ``accs``."""
    path.mkdir(parents=True)
    config = {"seed": seed, "tasks": {"family": "permuted-pixels", "count": count}, "optim": {"lr": lr}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "provenance.json").write_text(json.dumps({"status": status}))
    lines = []
    for t, acc in enumerate(accs):
        lines.append(
            {"event": "epoch", "task": t, "epoch": 0, "alpha": None, "phase": "task", "train_acc": acc}
        )
        lines.append(
            {
                "event": "task_end",
                "task": t,
                "train_acc": acc,
                "test_acc": acc - 0.1,
                "train_loss": 1 - acc,
                "test_loss": None,
                "dormant_fraction": 0.1 * t,
                "layers": {"0": {"dormant_fraction": 0.0}},
            }
        )
        lines.append({"event": "something_new", "task": t})
    (path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def write_sweep(root: Path, runs: dict[tuple[float, int], list[float] | None], statuses=None) -> Path:
    """A sweep directory: sweep.yaml, runs.jsonl and a run per (lr, seed); None = not started."""
    root.mkdir()
    (root / "sweep.yaml").write_text(yaml.safe_dump({"base": {}, "grid": {"optim.lr": [0.1, 0.01]}}))
    index = []
    for (lr, seed), accs in runs.items():
        rid = f"lr={lr}-s{seed}"
        index.append({"id": rid, "path": f"runs/{rid}", "seed": seed, "point": {"optim.lr": lr}})
        if accs is not None:
            status = (statuses or {}).get((lr, seed), "done")
            write_run(root / "runs" / rid, seed=seed, lr=lr, accs=accs, status=status)
    (root / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in index))
    return root


FULL = {
    (0.1, 0): [0.9, 0.8, 0.5],
    (0.1, 1): [0.9, 0.7, 0.6],
    (0.1, 2): [0.9, 0.6, 0.7],
    (0.01, 0): [0.95, 0.95, 0.95],
}


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_mean_ci_matches_hand_computation():
    e = mean_ci([0.5, 0.6, 0.7])
    assert e.n == 3 and e.mean == pytest.approx(0.6)
    assert e.half == pytest.approx(T2 * 0.1 / math.sqrt(3))
    assert mean_ci([0.4]).half is None and mean_ci([0.4]).mean == 0.4
    assert mean_ci([float("nan"), None]).mean is None
    assert mean_ci([1.0, float("inf"), 3.0]).mean == pytest.approx(2.0)


def test_sweep_report_numbers(tmp_path):
    root = write_sweep(tmp_path / "sw", FULL)
    out = make_report(root)
    assert out == root / "report"

    summary = read_csv(out / "summary.csv")
    assert len(summary) == 4 * 3  # runs × tasks
    assert list(summary[0])[:6] == ["run", "optim.lr", "seed", "status", "task", "train_acc"]
    assert "layers" not in summary[0] and "dormant_fraction" in summary[0]
    row = next(r for r in summary if r["run"] == "lr=0.1-s1" and r["task"] == "1")
    assert float(row["train_acc"]) == 0.7 and float(row["test_acc"]) == pytest.approx(0.6)

    est = {(r["scope"], r["optim.lr"], r["measure"]): r for r in read_csv(out / "tables.csv")}
    final = est[("final", "0.1", "train_acc")]  # task 2 values 0.5, 0.6, 0.7
    assert int(final["n"]) == 3 and int(final["final_task"]) == 2
    assert float(final["mean"]) == pytest.approx(0.6)
    assert float(final["ci_half"]) == pytest.approx(T2 * 0.1 / math.sqrt(3))
    # per-run means over tasks: 2.2/3, 2.2/3, 2.2/3 → s = 0
    over = est[("mean_over_tasks", "0.1", "train_acc")]
    assert float(over["mean"]) == pytest.approx(2.2 / 3) and float(over["ci_half"]) == pytest.approx(0.0)
    single = est[("final", "0.01", "train_acc")]
    assert int(single["n"]) == 1 and single["ci_half"] == "" and float(single["mean"]) == 0.95
    assert float(est[("final", "0.1", "dormant_fraction")]["mean"]) == pytest.approx(0.2)
    assert ("final", "0.1", "test_loss") not in est  # always null: not a reported measure

    md = (out / "report.md").read_text()
    assert "Partial" not in md
    half = T2 * 0.1 / math.sqrt(3)
    assert f"0.60 ± {half:.2f}" in md and "| 0.01 | 2 | 1 | 0.95 |" in md


def test_plots_are_images_with_content(tmp_path):
    out = make_report(write_sweep(tmp_path / "sw", FULL))
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "curve_test_acc.png",
        "curve_train_acc.png",
        "curve_train_loss.png",
        "diagnostics.png",
        "final_task.png",
    ]
    for name in pngs:
        img = image.imread(out / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        rgb = img[..., :3].reshape(-1, 3)
        assert np.unique(rgb, axis=0).shape[0] > 20  # lines, bands, text: far from a blank canvas
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(pngs)
    assert 'src="curve' not in html


def test_partial_sweep_is_marked(tmp_path):
    runs = dict(FULL)
    runs[(0.1, 2)] = [0.9, 0.6]  # still running: two of three tasks
    runs[(0.01, 1)] = None  # not started
    root = write_sweep(tmp_path / "sw", runs, statuses={(0.1, 2): "running"})
    out = make_report(root, out=tmp_path / "rep")
    md = (out / "report.md").read_text()
    assert "Partial results: 3 of 5 runs finished (1 running or interrupted, 1 not started)" in md
    est = {(r["scope"], r["optim.lr"], r["measure"]): r for r in read_csv(out / "tables.csv")}
    final = est[("final", "0.1", "train_acc")]  # common final task 1: values 0.8, 0.7, 0.6
    assert int(final["final_task"]) == 1 and float(final["mean"]) == pytest.approx(0.7)
    assert "| 0.1 | 1 of 2 | 3 |" in md
    assert "Partial results" in (out / "report.html").read_text()


def test_single_run_and_tolerant_reading(tmp_path):
    run = tmp_path / "run"
    write_run(run, seed=0, lr=0.1, accs=[0.5, 0.6], status="running")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"event": "task_end", "task": 2, "train_')  # a writer mid-line
    out = make_report(run)
    rows = read_csv(out / "summary.csv")
    assert [r["task"] for r in rows] == ["0", "1"]
    assert "Partial results" in (out / "report.md").read_text()


def test_diverged_values_are_dropped_from_estimates(tmp_path):
    runs = {(0.1, 0): [0.9, 0.5], (0.1, 1): [0.9, 0.7]}
    root = write_sweep(tmp_path / "sw", runs, statuses={(0.1, 1): "diverged"})
    metrics = root / "runs" / "lr=0.1-s1" / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"train_loss": 0.30000000000000004', '"train_loss": NaN'))
    out = make_report(root)
    est = {(r["scope"], r["measure"]): r for r in read_csv(out / "tables.csv")}
    assert int(est[("final", "train_loss")]["n"]) == 1 and float(est[("final", "train_loss")]["mean"]) == 0.5
    assert int(est[("final", "train_acc")]["n"]) == 2
    md = (out / "report.md").read_text()
    assert "Failed or diverged runs" in md and "(n=1)" in md


def test_parquet_written_or_one_notice(tmp_path, monkeypatch, capsys):
    pa = pytest.importorskip("pyarrow.parquet")
    out = make_report(write_sweep(tmp_path / "a", FULL))
    table = pa.read_table(out / "summary.parquet")
    assert table.num_rows == 12 and table.schema.field("train_acc").type == "double"

    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    out = make_report(write_sweep(tmp_path / "b", FULL))
    assert not (out / "summary.parquet").exists() and (out / "summary.csv").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'plasticlab[parquet]'" in err[0]


def test_bad_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        make_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run"):
        make_report(tmp_path / "empty")
    assert not any(p.name.startswith(".report") for p in (tmp_path / "empty").iterdir())


def test_many_groups_are_faceted_by_the_first_key(tmp_path):
    from plasticlab.report import plots
    from plasticlab.report.runs import load
    from plasticlab.report.tables import groups

    root = tmp_path / "sw"
    root.mkdir()
    index = []
    for kind in ("abrupt", "task-sampling"):
        for lr in (0.1, 0.01, 0.001, 0.0001):
            rid = f"{kind}-{lr}"
            index.append({"id": rid, "path": f"runs/{rid}", "seed": 0,
                          "point": {"environment.kind": kind, "optim.lr": lr}})
            write_run(root / "runs" / rid, seed=0, lr=lr, accs=[0.9, 0.5 + lr, 0.4])
    (root / "sweep.yaml").write_text(yaml.safe_dump({"base": {}, "grid": {}}))
    (root / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in index))
    gs = groups(load(root))
    assert len(gs) == 8 > plots.FACET_OVER
    calls = []
    orig = plots.faceted_curve
    plots.faceted_curve = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        out = plots.curve(tmp_path / "c.png", gs, "train_acc", partial=False)
    finally:
        plots.faceted_curve = orig
    assert calls and out is not None
    img = image.imread(out)
    assert img.shape[1] > img.shape[0]  # panels side by side
