"""run_sweep with an injected fake run function: skip, resume, failures, executors."""

from __future__ import annotations

import json
import sys

import pytest

from plasticlab.registry import UserError
from plasticlab.report import make_report
from plasticlab.sweep import read_status_table, run_sweep
from plasticlab.sweep.executors import cores
from tests.sweep import sweep_fakes as fakes

RUNNER = "tests.sweep.sweep_fakes:fake_run"
BASE = {"tasks": {"family": "permuted-pixels", "count": 3}, "model": {"name": "mlp", "hidden": [8]}}


def sweep(lrs, seeds=(0, 1)) -> dict:
    return {"base": BASE, "grid": {"optim.lr": list(lrs)}, "seeds": list(seeds)}


def status_rows(root) -> dict[str, dict]:
    return {r["id"]: r for r in read_status_table(root)}


def index(root) -> list[dict]:
    return [json.loads(x) for x in (root / "runs.jsonl").read_text().splitlines()]


def test_sweep_runs_everything_and_a_rerun_does_no_work(tmp_path, capsys):
    root = run_sweep(sweep([0.1, 0.01]), out=tmp_path / "sw", runner=RUNNER, progress=False)
    entries = index(root)
    assert len(entries) == 4 and (root / "sweep.yaml").is_file() and not (root / "sweep.lock").exists()
    rows = status_rows(root)
    assert {r["status"] for r in rows.values()} == {"done"} and {r["task"] for r in rows.values()} == {"3/3"}
    for e in entries:
        assert fakes.task_ends(root / e["path"]) == [0, 1, 2]
        assert len(fakes.calls(root / e["path"])) == 1
    before = {e["id"]: (root / e["path"] / "metrics.jsonl").read_text() for e in entries}
    capsys.readouterr()

    seconds = {i: r["seconds"] for i, r in rows.items()}
    run_sweep(sweep([0.1, 0.01]), out=root, runner=RUNNER, progress=False)
    assert "4 runs, 4 already finished, 0 to run" in capsys.readouterr().err
    assert {i: r["seconds"] for i, r in status_rows(root).items()} == seconds != {}
    assert before == {e["id"]: (root / e["path"] / "metrics.jsonl").read_text() for e in entries}


def test_killed_sweep_rerun_completes_every_run_exactly_once(tmp_path, monkeypatch):
    spec = sweep([0.1, 0.01, 0.2])  # 6 runs, seed-major
    monkeypatch.setattr(fakes, "INTERRUPT", ("lr=0.01-s0", 1))  # Ctrl-C in the 2nd run, after its task 1
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out=tmp_path / "sw", runner=RUNNER, progress=False)
    root = tmp_path / "sw"
    rows = status_rows(root)
    states = [rows[e["id"]]["status"] for e in index(root)]
    assert states == ["done", "interrupted", "pending", "pending", "pending", "pending"]
    assert not (root / "sweep.lock").exists()

    monkeypatch.setattr(fakes, "INTERRUPT", None)
    run_sweep(spec, out=root, runner=RUNNER, progress=False)
    for e in index(root):
        run = root / e["path"]
        assert fakes.task_ends(run) == [0, 1, 2], e["id"]  # every task exactly once
        resumes = [c["resume"] for c in fakes.calls(run)]
        assert resumes == ([False, True] if e["id"].startswith("lr=0.01-s0") else [False]), e["id"]
    assert {r["status"] for r in status_rows(root).values()} == {"done"}


def test_failed_and_diverged_runs_never_stop_the_others(tmp_path, capsys):
    spec = sweep([0.1, fakes.FAIL, fakes.DIVERGE, 0.01], seeds=[0])
    root = run_sweep(spec, out=tmp_path / "sw", runner=RUNNER, progress=False)
    ids = [e["id"] for e in index(root)]
    rows = status_rows(root)
    assert [rows[i]["status"] for i in ids] == ["done", "failed", "diverged", "done"]
    err = capsys.readouterr().err
    failed_id = ids[1]
    log = root / "logs" / f"{failed_id}.log"
    assert "failed runs (1):" in err and f"{failed_id}: RuntimeError: boom at lr=7.0 — log: {log}" in err
    text = log.read_text()
    assert "Traceback" in text and "fake run" in text  # captured output and traceback

    # a re-run retries the failed run (it fails again) and leaves the diverged one alone
    run_sweep(spec, out=root, runner=RUNNER, progress=False)
    assert "4 runs, 3 already finished, 1 to run" in capsys.readouterr().err
    assert len(fakes.calls(root / "runs" / ids[2])) == 1
    assert len(fakes.calls(root / "runs" / ids[1])) == 2
    md = (make_report(root) / "report.md").read_text()
    assert "Failed or diverged runs" in md and "Partial" not in md


def test_process_pool_sets_threads_per_worker(tmp_path):
    root = run_sweep(sweep([0.1, 0.01]), executor="process", workers=2, out=tmp_path / "sw", runner=RUNNER)
    runs = [root / e["path"] for e in index(root)]
    assert all(fakes.task_ends(r) == [0, 1, 2] for r in runs)
    threads = {fakes.calls(r)[0]["threads"] for r in runs}
    assert threads == {max(1, cores() // 2)}
    import os

    assert os.getpid() not in {fakes.calls(r)[0]["pid"] for r in runs}  # ran in the workers


def test_flaky_run_is_resumed_on_rerun(tmp_path):
    spec = sweep([fakes.FLAKY], seeds=[0])
    root = run_sweep(spec, out=tmp_path / "sw", runner=RUNNER, progress=False)
    assert list(status_rows(root).values())[0]["status"] == "failed"
    run_sweep(spec, out=root, runner=RUNNER, progress=False, retry_failed=False)
    assert list(status_rows(root).values())[0]["status"] == "failed"
    run_sweep(spec, out=root, runner=RUNNER, progress=False)
    run = root / index(root)[0]["path"]
    assert list(status_rows(root).values())[0]["status"] == "done" and fakes.task_ends(run) == [0, 1, 2]


def test_progress_line_and_partial_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fakes, "INTERRUPT", ("lr=0.1-s1", 0))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep([0.1]), out=tmp_path / "sw", runner=RUNNER, progress=True)
    err = capsys.readouterr().err
    assert "[1/2] done" in err and "\r" not in err  # off a terminal: a plain line per finished run, no bar
    md = (make_report(tmp_path / "sw") / "report.md").read_text()
    assert "Partial results: 1 of 2 runs finished (1 running or interrupted, 0 not started)" in md


def test_executor_errors_are_user_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown executor 'lsf'"):
        run_sweep(sweep([0.1]), executor="lsf", out=tmp_path / "a", runner=RUNNER, progress=False)
    assert not (tmp_path / "a").exists()  # nothing written
    with pytest.raises(UserError, match="use it with --executor ray"):
        run_sweep(sweep([0.1]), address="auto", out=tmp_path / "a", runner=RUNNER, progress=False)
    with pytest.raises(UserError, match="--workers must be"):
        run_sweep(sweep([0.1]), executor="process", workers=0, out=tmp_path / "a", runner=RUNNER)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UserError, match=r"the ray executor needs Ray: pip install 'plasticlab\[ray\]'"):
        run_sweep(sweep([0.1]), executor="ray", out=tmp_path / "b", runner=RUNNER, progress=False)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "sweep.lock").write_text(f"{__import__('socket').gethostname()} 1")  # pid 1 is alive
    with pytest.raises(UserError, match="is in use by process 1"):
        run_sweep(sweep([0.1]), out=tmp_path / "c", runner=RUNNER, progress=False)
