"""One sweep run, as executed inside any executor (this process, a pool worker or a Ray task).

``execute(job)`` decides from the run directory whether to start or resume, calls the runner
(``plasticlab.api.run`` unless a test injects another) with stdout/stderr captured in the run's
log, and returns a ``Result``. It never raises for a failed run (only for Ctrl-C), so one bad run
cannot stop the others; the run's own directory is the only thing it writes besides its log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from plasticlab.registry import Interrupted

FINAL = ("done", "diverged")
"""Statuses a re-run of the sweep leaves alone."""
DEFAULT_RUNNER = "plasticlab.api:run"

Runner = Callable[..., Path]
"""``runner(config, *, out, resume) -> run dir``; with ``resume=True`` config is None."""


@dataclass(frozen=True)
class Job:
    id: str
    config: dict
    out: str
    """Run directory (absolute)."""
    log: str
    """Log file (absolute): captured output and, on failure, the traceback."""
    runner: Runner | str = DEFAULT_RUNNER
    """A callable or ``"module:function"`` (a name keeps jobs picklable for any executor)."""
    threads: int = 0
    """torch CPU threads for this run (0 = leave as is)."""


@dataclass(frozen=True)
class Result:
    id: str
    status: str
    """done | diverged | failed."""
    seconds: float
    log: str
    error: str | None = None
    """Last line of the traceback when the run failed."""
    resumed: bool = False


def read_status(run_dir: str | Path) -> str:
    """``provenance.json`` status: pending (no run yet), running, done, failed or diverged."""
    path = Path(run_dir) / "provenance.json"
    if not (Path(run_dir) / "config.yaml").is_file() or not path.is_file():
        return "pending"
    try:
        return str(json.loads(path.read_text()).get("status", "running"))
    except (OSError, json.JSONDecodeError):
        return "running"  # why: the run may be replacing the file right now


def current_task(run_dir: str | Path, tail_bytes: int = 8192) -> int | None:
    """Task of the last row in ``metrics.jsonl`` (read from the file's tail only)."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("task"), int):
            return row["task"]
    return None


def resolve_runner(runner: Runner | str) -> Runner:
    if callable(runner):
        return runner
    module, _, name = runner.partition(":")
    return getattr(importlib.import_module(module), name)


def execute(job: Job) -> Result:
    """Run or resume ``job``; failures become ``Result(status="failed")``; a stop (``Interrupted``:
    SIGINT/SIGTERM, the run checkpointed) and Ctrl-C propagate."""
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    out, log = Path(job.out), Path(job.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    resume = (out / "config.yaml").is_file()
    error = None
    start = time.perf_counter()
    with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        stamp = dt.datetime.now().isoformat(timespec="seconds")
        print(f"== {stamp} {'resume' if resume else 'start'} {job.id} in {out}", flush=True)
        try:
            resolve_runner(job.runner)(None if resume else job.config, out=out, resume=resume)
        except Interrupted:
            print(f"== {dt.datetime.now().isoformat(timespec='seconds')} interrupted", flush=True)
            raise
        except Exception as e:  # why: any failure of one run is recorded, never raised into the sweep
            traceback.print_exc(file=f)
            error = f"{type(e).__name__}: {e}".splitlines()[0]
        status = read_status(out)
        if error is None and status not in FINAL:
            error = f"runner returned but the run's status is {status!r}"
        if error is not None:
            status = "failed"
        print(f"== {dt.datetime.now().isoformat(timespec='seconds')} {status}", flush=True)
    return Result(job.id, status, time.perf_counter() - start, str(log), error, resume)


def execute_pack(jobs: list[Job]) -> list[Result]:
    """Run the jobs of one pack as one batched model (``plasticlab.sweep.packed.run_packed``).

    The pack's output goes to the first member's log; the others' logs name it. A failure marks
    every member that did not finish as failed (a re-run resumes them).
    """
    from plasticlab.sweep.packed import run_packed

    if jobs[0].threads:
        import torch

        torch.set_num_threads(jobs[0].threads)
    outs = [Path(j.out) for j in jobs]
    resume = any((o / "config.yaml").is_file() for o in outs)
    first = Path(jobs[0].log)
    for j in jobs:
        Path(j.log).parent.mkdir(parents=True, exist_ok=True)
        if j is not jobs[0]:
            with open(j.log, "a") as f:
                print(f"== packed with {', '.join(x.id for x in jobs if x is not j)}; output in {first}", file=f)
    error = None
    start = time.perf_counter()
    with open(first, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print(f"== {dt.datetime.now().isoformat(timespec='seconds')} {'resume' if resume else 'start'} "
              f"pack of {len(jobs)}: {', '.join(j.id for j in jobs)}", flush=True)
        try:
            run_packed([j.config for j in jobs], outs=outs, resume=resume)
        except Interrupted:
            print(f"== {dt.datetime.now().isoformat(timespec='seconds')} interrupted", flush=True)
            raise
        except Exception as e:  # why: a failed pack is recorded, never raised into the sweep
            traceback.print_exc(file=f)
            error = f"{type(e).__name__}: {e}".splitlines()[0]
    seconds = time.perf_counter() - start
    results = []
    for j in jobs:
        status = read_status(j.out)
        why = error if status not in FINAL else None
        if status not in FINAL:
            status, why = "failed", why or f"pack returned but the run's status is {status!r}"
        results.append(Result(j.id, status, seconds, str(first if why else j.log), why, resume))
    return results


Unit = Job | tuple[Job, ...]
"""What an executor runs as one task: a job, or a pack of jobs trained as one batched model."""


def jobs_of(unit: Unit) -> tuple[Job, ...]:
    return unit if isinstance(unit, tuple) else (unit,)


def execute_unit(unit: Unit) -> list[Result]:
    """``execute`` a job or ``execute_pack`` a pack; one Result per job."""
    return execute_pack(list(unit)) if isinstance(unit, tuple) else [execute(unit)]


def with_threads(unit: Unit, threads: int) -> Unit:
    """The unit with ``threads`` set on every job that does not set its own."""
    fixed = tuple(replace(j, threads=j.threads or threads) for j in jobs_of(unit))
    return fixed if isinstance(unit, tuple) else fixed[0]
