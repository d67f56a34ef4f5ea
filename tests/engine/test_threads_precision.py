"""engine.threads and engine.precision resolve to what the run computes with, recorded in config.yaml;
the executor never changes a run's numbers."""

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

import plasticlab
from plasticlab.api import resolve
from plasticlab.engine import accel, loop

ROOT = Path(__file__).resolve().parents[2]


def test_auto_threads_and_precision_are_resolved_and_recorded(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(accel, "bf16_units", lambda device: False)
    d = plasticlab.run(None, overrides=tiny + ["tasks.count=1"], out=tmp_path / "r")
    engine = yaml.safe_load((d / "config.yaml").read_text())["engine"]
    assert engine["threads"] == 1 and engine["precision"] == "fp32"
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(accel, "bf16_units", lambda device: True)
    s = loop.setup(resolve(None, tiny + ["engine.precision=auto"]))
    assert s.cfg.engine.precision == "bf16"


def test_bf16_without_matrix_units_says_so_once(tiny, monkeypatch, capsys):
    monkeypatch.setattr(accel, "bf16_units", lambda device: False)
    monkeypatch.setattr(accel, "_said", set())
    for _ in range(2):
        s = loop.setup(resolve(None, tiny + ["engine.precision=bf16"]))
        assert s.cfg.engine.precision == "bf16"  # kept: results must not depend on the machine
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bf16" in err[0] and "emulated" in err[0]


def test_the_executor_does_not_change_the_numbers(tmp_path):
    """Through the CLI in fresh processes with torch's default threads (2 here): before threads were
    resolved, ``local`` computed with torch's default and ``process`` with one thread per worker."""
    spec = {"base": {"model": {"hidden": [256, 256]}, "tasks": {"count": 2}, "environment": {"epochs_per_task": 1},
                     "diagnostics": {"every": "never"}},
            "grid": {"optim.lr": [1e-3, 3e-3]}, "seeds": [0]}
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    roots = {}
    for executor in ("local", "process"):
        roots[executor] = tmp_path / executor
        workers = ["--workers", "2"] if executor == "process" else []
        r = subprocess.run([sys.executable, "-m", "plasticlab", "sweep", str(path), "--executor", executor, *workers,
                            "--out", str(roots[executor]), "--quiet"], capture_output=True,
                           text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
    runs = sorted(p.name for p in (roots["local"] / "runs").iterdir())
    assert len(runs) == 2 and runs == sorted(p.name for p in (roots["process"] / "runs").iterdir())
    for name in runs:
        a, b = roots["local"] / "runs" / name, roots["process"] / "runs" / name
        assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
        assert yaml.safe_load((a / "config.yaml").read_text())["engine"]["threads"] == 1
