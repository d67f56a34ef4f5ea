"""The run-directory lifecycle: graceful SIGTERM/SIGINT stop and exact resume (run and sweep), the
directory lock, status repair, resume overrides, temporaries and stale error logs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import plasticlab
from plasticlab.registry import UserError
from plasticlab.store import read_metrics
from plasticlab.store.lifecycle import RunDirectory

ROOT = Path(__file__).resolve().parents[2]
LONG = ["model.hidden=[64, 64]", "tasks.count=3", "environment.epochs_per_task=12", "diagnostics.every=never",
        "engine.threads=1"]
"""A run of ~1,000 steps (a few seconds): long enough to be signalled in the middle."""


def start(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "plasticlab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for_rows(path: Path, rows: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and len(path.read_text().splitlines()) >= rows:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {rows} rows in {path}")


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "provenance.json").read_text())["status"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_a_run_with_a_checkpoint_and_resume_is_exact(tmp_path, sig):
    whole = plasticlab.run(None, overrides=LONG, out=tmp_path / "whole")
    cut = tmp_path / "cut"
    proc = start("run", *[x for s in LONG for x in ("--set", s)], "--out", str(cut), "--quiet")
    wait_for_rows(cut / "metrics.jsonl", 5, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert err.strip().count("\n") == 0 and "--resume" in err and signal.Signals(sig).name in err
    assert status(cut) == "interrupted" and not (cut / "error.log").exists()
    rows = read_metrics(cut)
    assert 0 < len(rows) < len(read_metrics(whole))
    plasticlab.run(None, out=cut, resume=True)
    assert status(cut) == "done"
    assert (cut / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()


def test_sigterm_to_a_sweep_stops_its_workers_and_a_rerun_finishes_exactly(tmp_path):
    spec = {"base": {"model": {"hidden": [64, 64]}, "tasks": {"count": 3},
                     "environment": {"epochs_per_task": 6}, "diagnostics": {"every": "never"}},
            "grid": {"optim.lr": [1e-3, 2e-3]}, "seeds": [0]}
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(spec))
    root = tmp_path / "sweep"
    proc = start("sweep", str(path), "--out", str(root), "--executor", "process", "--workers", "2", "--quiet")
    end = time.monotonic() + 120
    while not any(len(p.read_text().splitlines()) >= 5 for p in root.glob("runs/*/metrics.jsonl")):
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "re-run the same command" in err
    runs = sorted(p.parent for p in root.glob("runs/*/config.yaml"))
    assert runs and all(status(r) in ("interrupted", "done") for r in runs)
    assert "interrupted" in {status(r) for r in runs}
    again = start("sweep", str(path), "--out", str(root), "--executor", "process", "--workers", "2", "--quiet")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    for r in sorted(p.parent for p in root.glob("runs/*/config.yaml")):
        assert status(r) == "done"
        cfg = yaml.safe_load((r / "config.yaml").read_text())
        alone = plasticlab.run(cfg, out=tmp_path / f"alone-{r.name}")
        assert (r / "metrics.jsonl").read_text() == (alone / "metrics.jsonl").read_text()


def test_a_locked_run_directory_refuses_a_second_writer(tmp_path, tiny):
    d = plasticlab.run(None, overrides=tiny + ["tasks.count=1"], out=tmp_path / "r")
    holder = RunDirectory(d)
    holder.lock()
    try:
        with pytest.raises(UserError, match="in use by another process"):
            plasticlab.run(None, out=d, resume=True, overrides=[])
        other = RunDirectory(d)
        with pytest.raises(UserError, match="in use"):
            other.lock()
    finally:
        holder.unlock()
    RunDirectory(d).lock()  # free again


def test_status_left_running_after_the_last_checkpoint_is_repaired(tmp_path, tiny):
    d = plasticlab.run(None, overrides=tiny + ["tasks.count=1"], out=tmp_path / "r")
    prov = json.loads((d / "provenance.json").read_text())
    (d / "provenance.json").write_text(json.dumps({**prov, "status": "running"}))  # killed before it said done
    before = (d / "metrics.jsonl").read_text()
    assert plasticlab.run(None, out=d, resume=True) == d
    assert status(d) == "done" and (d / "metrics.jsonl").read_text() == before


def test_resume_refuses_overrides_that_change_the_run(tmp_path, tiny):
    d = tmp_path / "r"
    sets = tiny + ["tasks.count=2", "engine.checkpoint_every=10"]

    def crash(step, total, task):
        if task == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plasticlab.run(None, overrides=sets, out=d, progress=crash)
    config = (d / "config.yaml").read_text()
    for bad in (["optim.lr=0.5"], ["environment.epochs_per_task=4"], ["seed=3", "engine.threads=1"]):
        with pytest.raises(UserError, match="--resume cannot change " + bad[0].split("=")[0]):
            plasticlab.run(None, out=d, resume=True, overrides=bad)
        assert (d / "config.yaml").read_text() == config  # nothing written
    assert status(d) == "failed" and (d / "error.log").exists()
    (d / "checkpoints" / ".latest.pt.tmp99999").write_bytes(b"half")  # a killed writer's leftover
    plasticlab.run(None, out=d, resume=True, overrides=["engine.threads=1", "engine.checkpoint_every=0"])
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["status"] == "done" and prov["resume_changes"][0] == {"at": prov["resume_changes"][0]["at"],
                                                                      "engine.checkpoint_every": [10, 0]}
    assert yaml.safe_load((d / "config.yaml").read_text())["engine"]["checkpoint_every"] == 0
    assert not (d / "error.log").exists() and not list((d / "checkpoints").glob(".*tmp*"))
    whole = plasticlab.run(None, overrides=sets, out=tmp_path / "whole")
    assert read_metrics(d) == read_metrics(whole)


def test_a_damaged_checkpoint_is_one_line_and_changes_nothing(tmp_path, tiny):
    d = plasticlab.run(None, overrides=tiny + ["tasks.count=1"], out=tmp_path / "r")
    (d / "checkpoints" / "latest.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="checkpoint is damaged"):
        plasticlab.run(None, out=d, resume=True)
    assert status(d) == "done"


def test_rows_shorter_than_the_checkpoint_are_an_error_never_padding(tmp_path, tiny):
    d = tmp_path / "r"

    def crash(step, total, task):
        if task == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plasticlab.run(None, overrides=tiny + ["tasks.count=2"], out=d, progress=crash)
    text = (d / "metrics.jsonl").read_bytes()
    (d / "metrics.jsonl").write_bytes(text[: len(text) // 2])  # rows lost after the checkpoint counted them
    with pytest.raises(UserError, match=r"metrics.jsonl: \d+ bytes of rows that its checkpoint counts are missing"):
        plasticlab.run(None, out=d, resume=True)
    assert b"\0" not in (d / "metrics.jsonl").read_bytes()


def test_disk_full_is_one_line_keeps_the_last_checkpoint_and_resumes(tmp_path, tiny, monkeypatch):
    import errno

    from plasticlab.store import rundir

    sets = tiny + ["tasks.count=2"]
    whole = plasticlab.run(None, overrides=sets, out=tmp_path / "whole")
    real, calls = rundir.torch.save, [0]

    def full_on_second(obj, path):
        calls[0] += 1
        if calls[0] == 2:
            with open(path, "wb") as f:
                f.write(b"partial")  # a half-written temporary file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, path)

    monkeypatch.setattr(rundir.torch, "save", full_on_second)
    d = tmp_path / "r"
    with pytest.raises(UserError, match="cannot write .*latest.pt: No space left on device") as e:
        plasticlab.run(None, overrides=sets, out=d)
    assert "\n" not in str(e.value)
    assert status(d) == "failed" and "No space left" in (d / "error.log").read_text()
    assert not list((d / "checkpoints").glob(".*tmp*"))  # no partial file left
    monkeypatch.setattr(rundir.torch, "save", real)
    plasticlab.run(None, out=d, resume=True)  # from the intact task-0 checkpoint
    assert read_metrics(d) == read_metrics(whole)


def test_the_lock_message_names_the_holder(tmp_path, tiny):
    d = plasticlab.run(None, overrides=tiny + ["tasks.count=1"], out=tmp_path / "r")
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, sys, time
fd = os.open({str(d / '.lock')!r}, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.pwrite(fd, str(os.getpid()).encode(), 0)
print('locked', flush=True); time.sleep(60)"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            plasticlab.run(None, out=d, resume=True)
    finally:
        holder.kill()
        holder.wait()
