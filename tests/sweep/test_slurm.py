"""The slurm executor through submitit's local executor (no Slurm needed): results equal the
``local`` executor's, a task preempted mid-run (SIGUSR2) is requeued and resumes exactly, a
stopped sweep cancels its tasks with checkpoints, and its errors are one line."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from plasticlab import api, cli
from plasticlab.registry import UserError
from plasticlab.sweep import run_sweep
from plasticlab.sweep.execute import Job
from plasticlab.sweep.slurm import SlurmExecutor, SlurmTask, reason, settings

needs_submitit = pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="needs submitit")

BASE = {
    "tasks": {"family": "permuted-pixels", "count": 2},
    "environment": {"epochs_per_task": 1, "compute_matched": False},
    "model": {"name": "mlp", "hidden": [16]},
    "diagnostics": {"every": "never"},
    "engine": {"device": "cpu"},  # why: a local submitit task hides GPUs unless it asks for them
}
LONG = {**BASE, "tasks": {"family": "permuted-pixels", "count": 3},
        "environment": {"epochs_per_task": 5, "compute_matched": False}}


def statuses(root: Path) -> dict[str, str]:
    with (root / "status.csv").open() as f:
        return {r["id"]: r["status"] for r in csv.DictReader(f)}


def runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("runs/*/config.yaml"))


def provenance(run: Path) -> dict:
    return json.loads((run / "provenance.json").read_text())


def tasks_of(folder: Path) -> list[int]:
    """Pids of the submitit task processes that run from ``folder`` (Linux /proc)."""
    pids = []
    for p in Path("/proc").iterdir() if Path("/proc/self").exists() else []:
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"submitit.core._submit" in cmd and str(folder).encode() in cmd:
                pids.append(int(p.name))
    return pids


def wait_for_task_end(root: Path, sweeping, limit_s: float = 120) -> Path:
    """The first run directory of ``root`` once it has a task_end row (mid-run), while ``sweeping()``."""
    end = time.monotonic() + limit_s
    while True:
        for m in root.glob("runs/*/metrics.jsonl"):
            if '"task_end"' in m.read_text():
                return m.parent
        assert sweeping(), "the sweep ended before any task did"
        assert time.monotonic() < end, "no task ended in time"
        time.sleep(0.02)


@needs_submitit
def test_slurm_local_sweep_equals_the_local_executor(tmp_path, capsys):
    """Through the CLI: a sweep file's ``slurm:`` section plus --slurm-* flags, two array tasks."""
    torch.set_num_threads(1)
    spec = {"base": BASE, "grid": {"optim.lr": [1e-3, 3e-3]}, "seeds": [0], "slurm": {"time": 30, "array": 1}}
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(spec))
    root = tmp_path / "slurm-sw"
    code = cli.main(["sweep", str(path), "--executor", "slurm", "--slurm-local", "--slurm-array", "2",
                     "--out", str(root), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "--slurm-local: 2 tasks run on this machine (submitit local executor, 2 at once)" in err
    assert set(statuses(root).values()) == {"done"}
    assert yaml.safe_load((root / "sweep.yaml").read_text())["slurm"] == {"time": 30, "array": 1}
    assert len(list((root / "slurm").glob("*_0_log.out"))) == 2  # submitit's logs under OUT/slurm

    ref = run_sweep({k: v for k, v in spec.items() if k != "slurm"}, executor="local", out=tmp_path / "local",
                    progress=False)
    assert [r.name for r in runs(root)] == [r.name for r in runs(ref)] and len(runs(root)) == 2
    for a, b in zip(runs(root), runs(ref), strict=True):
        assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> Path:
    """The uninterrupted run of ``LONG`` with lr 1e-3, seed 0 (what the interrupted ones must equal)."""
    torch.set_num_threads(1)
    return api.run({**LONG, "optim": {"lr": 1e-3}, "seed": 0}, out=tmp_path_factory.mktemp("alone") / "run")


@needs_submitit
def test_a_preempted_task_is_requeued_and_resumes_exactly(tmp_path, alone):
    """SIGUSR2 (submitit's timeout/preemption signal) mid-run: checkpoint, requeue, resume."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("finds the task process through /proc")
    torch.set_num_threads(1)
    spec = {"base": LONG, "grid": {"optim.lr": [1e-3]}, "seeds": [0]}
    root = tmp_path / "sw"
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            run_sweep(spec, executor="slurm", slurm={"local": True}, out=root, progress=False)
        except BaseException as e:  # why: re-raised as a failure by the test below
            errors.append(e)

    thread = threading.Thread(target=sweep)
    thread.start()
    try:
        run = wait_for_task_end(root, thread.is_alive)
        pids = tasks_of(root / "slurm")
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGUSR2)
    finally:
        thread.join(timeout=180)
    assert not errors and not thread.is_alive(), errors

    log = (root / "logs" / f"{run.name}.log").read_text()
    assert log.index("interrupted") < log.index(f"resume {run.name}") < log.index("done")
    assert "this job is preempted" in "".join(p.read_text() for p in (root / "slurm").glob("*_log.err"))
    assert provenance(run)["status"] == "done" and provenance(run)["resumed"] is True
    assert (run / "metrics.jsonl").read_bytes() == (alone / "metrics.jsonl").read_bytes()


@needs_submitit
def test_sigterm_to_the_sweep_stops_its_tasks_and_a_rerun_finishes_exactly(tmp_path, alone, capsys):
    """The sweep (this process, through the CLI) gets SIGTERM mid-run: its tasks checkpoint and end."""
    torch.set_num_threads(1)
    spec = {"base": LONG, "grid": {"optim.lr": [1e-3]}, "seeds": [0], "slurm": {"local": True}}
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(spec))
    root = tmp_path / "sweep"
    stray: list[int] = []
    guard = signal.signal(signal.SIGTERM, lambda signum, _frame: stray.append(signum))  # why: never kill pytest
    found: list[Path] = []
    ended = threading.Event()

    def stop_mid_run() -> None:
        found.append(wait_for_task_end(root, lambda: not ended.is_set()))
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=stop_mid_run, daemon=True)
    thread.start()
    try:
        code = cli.main(["sweep", str(path), "--executor", "slurm", "--out", str(root), "--quiet"])
    finally:
        ended.set()
        thread.join(timeout=60)
        signal.signal(signal.SIGTERM, guard)
    err = capsys.readouterr().err
    assert code == 143 and not stray, err
    assert "stopped by SIGTERM" in err and "re-run the same command" in err
    run = found[0]
    assert provenance(run)["status"] == "interrupted" and not tasks_of(root / "slurm")

    # why: resuming in a requeued slurm task is the test above; here any executor finishes the sweep
    run_sweep(path, executor="local", out=root, progress=False)
    assert provenance(run)["status"] == "done" and provenance(run)["resumed"] is True
    assert (run / "metrics.jsonl").read_bytes() == (alone / "metrics.jsonl").read_bytes()


def test_missing_submitit_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if submitit were not installed
    spec = {"base": BASE, "grid": {"optim.lr": [1e-3]}, "seeds": [0]}
    with pytest.raises(UserError, match=r"^the slurm executor needs submitit: pip install 'plasticlab\[slurm\]'$"):
        run_sweep(spec, executor="slurm", out=tmp_path / "a", progress=False)
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert cli.main(["sweep", str(path), "--executor", "slurm", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "plasticlab: error: the slurm executor needs submitit: pip install 'plasticlab[slurm]'"


@pytest.mark.parametrize("slurm, message", [
    ({"time": 0}, r"sweep file .*sw\.yaml: slurm: time: expected whole minutes ≥ 1, got 0"),
    ({"partitions": "gpu"}, r"slurm: partitions: unknown slurm option \(allowed: partition, time"),
    ({"extra": {"array": "0-3"}}, r"slurm: extra: array is set by the executor"),
    ({"extra": {"time": 30}}, r"slurm: extra: set time with its own option"),
    ({"mem": -1}, r"slurm: mem: expected GB of memory > 0"),
    ("gpu", r"slurm: expected a mapping of options"),
])
def test_bad_slurm_sections_are_one_line(tmp_path, slurm, message):
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"optim.lr": [1e-3]}, "slurm": slurm}))
    with pytest.raises(UserError, match=message) as e:
        run_sweep(path, executor="slurm", out=tmp_path / "o", progress=False)
    assert "\n" not in str(e.value)


def test_options_merge_and_flag_errors(tmp_path):
    merged = settings({"partition": "cpu", "time": 30, "extra": {"account": "a", "qos": "low"}},
                      {"time": 240, "extra": ["qos=high", "exclusive"], "gpus": None})
    assert merged == {"partition": "cpu", "time": 240, "extra": {"account": "a", "qos": "high", "exclusive": True}}
    with pytest.raises(UserError, match=r"^--slurm-cpus: expected a whole number ≥ 1, got 0$"):
        settings({}, {"cpus": 0})
    with pytest.raises(UserError, match=r"--slurm-\* options are for --executor slurm \(not local\)"):
        run_sweep({"base": BASE}, executor="local", slurm={"partition": "gpu"}, out=tmp_path / "o", progress=False)


@needs_submitit
def test_slurm_or_local_and_the_sbatch_options(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no sbatch: local, automatically
    assert SlurmExecutor(tmp_path / "a", {}).local
    with pytest.raises(UserError, match=r"sbatch is not on PATH .* add --slurm-local"):
        SlurmExecutor(tmp_path / "b", {"local": False})
    (tmp_path / "bin").mkdir()
    for tool in ("sbatch", "srun"):  # never run: the executor only checks that they are there
        (tmp_path / "bin" / tool).write_text("#!/bin/sh\nexit 1\n")
        (tmp_path / "bin" / tool).chmod(0o755)
    opts = {"partition": "gpu", "time": 240, "mem": 8, "cpus": 4, "gpus": 1, "array": 3,
            "extra": {"account": "abc", "requeue": True}}
    ex = SlurmExecutor(tmp_path / "sweep" / "slurm", opts)
    assert not ex.local and ex.cpus == 4
    text = ex.ex._executor._make_submission_file_text("python -m x", "uid")  # the sbatch script
    for line in ("--partition=gpu", "--time=240", "--mem=8GB", "--cpus-per-task=4", "--gpus-per-node=1",
                 "--account=abc", "--requeue", "--signal=USR2@90", "--job-name=plasticlab-sweep"):
        assert f"#SBATCH {line}\n" in text, line
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\n"
                                             "exit 1\n")
    job = Job("r", {}, str(tmp_path / "r"), str(tmp_path / "r.log"))
    with pytest.raises(UserError, match=r"^slurm: sbatch refused the array job: sbatch: error: invalid partition"):
        list(ex.run([job, job]))


@needs_submitit
def test_the_task_resubmits_itself_and_failures_are_one_line(tmp_path):
    import submitit.core.utils

    job = Job("r", {}, str(tmp_path / "r"), str(tmp_path / "r.log"))
    again = SlurmTask().checkpoint(job)
    assert isinstance(again.function, SlurmTask) and again.args == (job,)
    trace = "Traceback (most recent call last):\n  File x\nValueError: boom\n"
    error = submitit.core.utils.FailedJobError(f"Job (task=0) failed during processing with trace:\n"
                                               f"----------------------\n{trace}----------------------\nlogs")

    class FakeJob:
        job_id, state = "7_1", "FAILED"

    assert reason(error, FakeJob()) == "slurm task 7_1 failed: ValueError: boom"
    assert reason(RuntimeError("no output"), FakeJob()) == "slurm task 7_1 ended without a result (state FAILED)"
