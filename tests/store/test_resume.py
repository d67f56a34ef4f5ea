"""Exact resume: a run killed with SIGKILL and resumed writes the same metrics.jsonl as a run
that was never interrupted (no duplicate or missing rows, same numbers on CPU)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import plasticlab

ROOT = Path(__file__).resolve().parents[2]


def start(out: Path, sets: list[str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "plasticlab", "run", "--quiet", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_after_rows(proc: subprocess.Popen, metrics: Path, rows: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= rows:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("kill_at_rows", [3, 11])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny, kill_at_rows):
    sets = tiny + ["engine.checkpoint_every=5", "environment.kind=task-sampling"]
    ref = plasticlab.run(None, overrides=sets, out=tmp_path / "ref")
    out = tmp_path / "killed"
    kill_after_rows(start(out, sets), out / "metrics.jsonl", kill_at_rows)
    assert (out / "config.yaml").exists()
    plasticlab.run(None, out=out, resume=True)
    assert (out / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    assert plasticlab.store.read_json(out / "provenance.json")["status"] == "done"


def test_resume_of_finished_run_does_nothing(tmp_path, tiny):
    d = plasticlab.run(None, overrides=tiny, out=tmp_path / "r")
    before = (d / "metrics.jsonl").read_text()
    plasticlab.run(None, out=d, resume=True)
    assert (d / "metrics.jsonl").read_text() == before


def test_checkpoint_loads_without_pickle_code(tmp_path, tiny):
    import torch

    d = plasticlab.run(None, overrides=tiny, out=tmp_path / "r")
    state = torch.load(d / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == plasticlab.read_metrics(d, "task_end")[-1]["step"]
    assert state["metrics_bytes"] == (d / "metrics.jsonl").stat().st_size
