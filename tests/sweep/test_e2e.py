"""Sweeps with the real engine on tiny ``digits`` runs: skip, kill and resume, divergence, report."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from plasticlab import api
from plasticlab.report import make_report
from plasticlab.sweep import run_sweep

BASE = {
    "tasks": {"family": "permuted-pixels", "count": 2},
    "environment": {"epochs_per_task": 1, "compute_matched": False},
    "model": {"name": "mlp", "hidden": [16]},
    "diagnostics": {"every": "never"},
}
REPO = Path(__file__).resolve().parents[2]


def statuses(root: Path) -> dict[str, str]:
    with (root / "status.csv").open() as f:
        return {r["id"]: r["status"] for r in csv.DictReader(f)}


def rows(run: Path, event: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == event]


def entries(root: Path) -> list[dict]:
    return [json.loads(x) for x in (root / "runs.jsonl").read_text().splitlines()]


def test_local_sweep_report_and_divergence(tmp_path, capsys):
    torch.set_num_threads(1)
    spec = {
        "base": BASE,
        "grid": {"optim": [{"name": "adam", "lr": 1.0e-3}, {"name": "sgd", "lr": 1.0e30}]},
        "seeds": [0, 1],
    }
    root = run_sweep(spec, out=tmp_path / "sw", progress=False)
    ids = [e["id"] for e in entries(root)]
    assert ids[0].startswith("optim=adam-lr=0.001-s0-")
    assert [statuses(root)[i] for i in ids] == ["done", "diverged", "done", "diverged"]
    capsys.readouterr()
    run_sweep(spec, out=root, progress=False)
    assert "4 runs, 4 already finished, 0 to run" in capsys.readouterr().err

    out = make_report(root)
    with (out / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 2 * 2  # the diverged runs stopped before their first task end
    finals = [float(r["train_acc"]) for r in summary if r["task"] == "1"]
    md = (out / "report.md").read_text()
    assert f"{sum(finals) / 2:.2f}" in md and "Failed or diverged runs" in md


KILLABLE = """
import sys, torch
torch.set_num_threads(1)
from plasticlab.sweep import run_sweep
run_sweep({spec!r}, out={out!r}, progress=False)
"""


def test_sweep_killed_mid_run_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    base = {
        **BASE,
        "tasks": {"family": "permuted-pixels", "count": 3},
        "environment": {"epochs_per_task": 8, "compute_matched": False},
    }
    spec = {"base": base, "grid": {"optim.lr": [1.0e-3, 3.0e-3]}, "seeds": [0]}
    root = tmp_path / "sw"
    code = KILLABLE.format(spec=spec, out=str(root))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        first = None
        while time.time() < deadline and proc.poll() is None:
            if first is None and (root / "runs.jsonl").is_file():
                first = root / entries(root)[0]["path"]
            if first is not None and (first / "metrics.jsonl").is_file() and rows(first, "task_end"):
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-way through the first run, after its first task
    finally:
        proc.wait()
    first_id = entries(root)[0]["id"]
    assert statuses(root)[first_id] != "done" and (root / "sweep.lock").exists()

    run_sweep(spec, out=root, progress=False)
    for e in entries(root):
        run = root / e["path"]
        assert [r["task"] for r in rows(run, "task_end")] == [0, 1, 2]
        assert json.loads((run / "provenance.json").read_text())["status"] == "done"
    # the resumed run wrote exactly the rows of an uninterrupted run of the same config
    point = next(e for e in entries(root) if e["id"] == first_id)
    ref = api.run({**base, "optim": {"lr": point["point"]["optim.lr"]}, "seed": 0}, out=tmp_path / "ref")
    key = lambda r: {k: v for k, v in r.items() if k not in ("time", "seconds")}
    assert [key(r) for r in rows(root / point["path"], "task_end")] == [key(r) for r in rows(ref, "task_end")]
    assert [key(r) for r in rows(root / point["path"], "epoch")] == [key(r) for r in rows(ref, "epoch")]
    assert f"resume {first_id}" in (root / "logs" / f"{first_id}.log").read_text()
