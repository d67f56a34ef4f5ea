"""``run_sweep``: expand a sweep, skip finished runs, execute the rest, keep a status table.

Usage::

    from plasticlab.sweep import run_sweep
    run_sweep("sweeps/lr.yaml", executor="process", workers=4, out="sweeps/lr")

Sweep directory::

    OUT/sweep.yaml     the sweep, base inlined (self-contained)
    OUT/runs.jsonl     one line per run: id, path, seed, grid point (read by the report)
    OUT/status.csv     id, status, task, seconds, path, log — refreshed while the sweep runs
    OUT/runs/<id>/     the run directories (plasticlab.store layout)
    OUT/logs/<id>.log  each run's captured output and traceback

Re-running the same sweep skips runs whose status is ``done`` or ``diverged``, resumes
interrupted (``running``) and ``failed`` runs from their checkpoints, and starts the others.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import yaml

from plasticlab.registry import UserError
from plasticlab.store.lifecycle import graceful_stop
from plasticlab.sweep.execute import (
    DEFAULT_RUNNER,
    FINAL,
    Interrupted,
    Job,
    Result,
    Runner,
    current_task,
    read_status,
)
from plasticlab.sweep.executors import EXECUTORS, make_executor
from plasticlab.sweep.spec import Point, Sweep, load_sweep

REFRESH_S = 1.0
"""Seconds between refreshes of the progress line and status.csv."""


def run_sweep(
    sweep: str | Path | dict | Sweep,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    out: str | Path | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    max_retries: int = 1,
    retry_failed: bool = True,
    progress: bool = True,
    runner: Runner | str = DEFAULT_RUNNER,
    pack: int = 1,
) -> Path:
    """Run every (grid point, seed) of ``sweep`` that is not finished yet.

    Args:
        sweep: sweep file path or mapping (``base``, ``grid``, ``seeds``).
        executor: ``local`` (in process), ``process`` (pool of ``workers``) or ``ray``.
        workers: pool size (process) or CPUs of a local Ray (default: all cores).
        address: Ray cluster address to join (ray only); default starts a local Ray.
        out: sweep directory; default ``sweeps/<sweep file name>``.
        cpus_per_run, gpus_per_run: resources each Ray task declares.
        max_retries: Ray retries of a failed run (each retry resumes the run).
        retry_failed: resume runs a previous sweep left ``failed`` (``diverged`` is final).
        progress: show runs done / running / failed and running runs' tasks on stderr.
        runner: ``runner(config, *, out, resume) -> run dir``; default ``plasticlab.api.run``.
        pack: train up to ``pack`` compatible points as one batched model (``--pack K``); each
            pack is one task of the executor (one process, one Ray task). Points that cannot be
            packed run separately, and the sweep says why.

    Returns:
        The sweep directory. Failed runs do not raise: they are listed at the end (with their
        log) and in ``status.csv``.
    """
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r} (allowed: {', '.join(EXECUTORS)})")
    if address and executor != "ray":
        raise UserError(f"--address joins a Ray cluster: use it with --executor ray (not {executor})")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be ≥ 1 (got {workers})")
    if pack < 1:
        raise UserError(f"--pack must be ≥ 1 (got {pack})")
    spec = load_sweep(sweep)
    points = spec.points()
    root = Path(out) if out is not None else Path("sweeps") / spec.name
    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise UserError(f"sweep directory {root} is a file (choose a directory path for --out)")
    with SweepLock(root):
        write_index(root, spec, points)
        table = StatusTable(root, points)
        todo = [
            p for p in points if table.status(p.id) not in FINAL and (retry_failed or table.status(p.id) != "failed")
        ]
        skipped = len(points) - len(todo)
        say(f"sweep {root}: {len(points)} runs, {skipped} already finished, {len(todo)} to run ({executor})")
        table.write()
        if not todo:
            return root
        jobs = [job(root, p, runner) for p in todo]
        packs, jobs = split_packs(jobs, pack) if pack > 1 else ([], jobs)
        ex = make_executor(
            executor,
            workers=workers,
            address=address,
            cpus_per_run=cpus_per_run,
            gpus_per_run=gpus_per_run,
            max_retries=max_retries,
        )
        monitor = Monitor(table, {p.id for p in todo}, enabled=progress)
        start = time.perf_counter()

        def forward(_signum: int) -> None:  # why: pool workers train in their own processes
            for pid in getattr(ex, "pids", list)():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)

        try:
            monitor.start()
            with graceful_stop(forward) as stop:
                try:
                    for result in ex.run([tuple(p) for p in packs] + jobs):
                        monitor.finished(result)
                        if stop():
                            break
                except Interrupted as e:  # a run stopped by the signal itself (local executor, workers)
                    stop.signum = stop.signum or e.signum or signal.SIGINT
                if stop():
                    raise Interrupted(-1, [], stop.signum)
        finally:
            monitor.stop()
            ex.close()
            table.write()
        say(f"sweep {root}: {table.summary()} in {time.perf_counter() - start:.1f} s")
        failures = [r for r in monitor.results if r.status == "failed"]
        if failures:
            say(f"failed runs ({len(failures)}):")
            for r in failures:
                say(f"  {r.id}: {r.error} — log: {r.log}")
    return root


def split_packs(jobs: list[Job], k: int) -> tuple[list[list[Job]], list[Job]]:
    """Group jobs into packs of ≤ k compatible configs; the rest run separately (each said why)."""
    from plasticlab.config import load_config
    from plasticlab.sweep.packed import plan_packs

    groups, alone = plan_packs([load_config(j.config) for j in jobs], k)
    for i, why in alone.items():
        say(f"{jobs[i].id}: runs separately ({why})")
    packs = [[jobs[i] for i in idx] for idx in groups if len(idx) > 1]
    packed = {i for idx in groups if len(idx) > 1 for i in idx}
    return packs, [j for i, j in enumerate(jobs) if i not in packed]


def read_status_table(root: str | Path) -> list[dict]:
    """Rows of ``OUT/status.csv`` (id, status, task, seconds, path, log); [] when absent."""
    path = Path(root) / "status.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_dir(root: Path, point_id: str) -> Path:
    return root / "runs" / point_id


def job(root: Path, p: Point, runner: Runner | str) -> Job:
    return Job(p.id, p.config, str(run_dir(root, p.id)), str(root / "logs" / f"{p.id}.log"), runner)


def write_index(root: Path, spec: Sweep, points: list[Point]) -> None:
    """Write ``sweep.yaml`` and ``runs.jsonl`` (both describe the whole grid, finished or not)."""
    root.mkdir(parents=True, exist_ok=True)
    atomic_text(root / "sweep.yaml", yaml.safe_dump(spec.as_dict(), sort_keys=False))
    lines = [
        json.dumps({"id": p.id, "path": f"runs/{p.id}", "seed": p.seed, "point": p.values}, default=str) for p in points
    ]
    atomic_text(root / "runs.jsonl", "".join(line + "\n" for line in lines))


def atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class StatusTable:
    """Status of every run, read from its directory, with ``status.csv`` written from it.

    A run is ``pending`` (not started), ``running`` (active in this sweep), ``interrupted``
    (left ``running`` by an earlier sweep), ``done``, ``diverged`` or ``failed``.
    """

    def __init__(self, root: Path, points: list[Point]):
        self.root = root
        self.points = points
        self.active: set[str] = set()
        self.seconds: dict[str, float] = {
            r["id"]: float(r["seconds"]) for r in read_status_table(root) if r.get("seconds")
        }
        """Wall-clock seconds of each run's last execution (kept from earlier sweeps)."""
        self.failed: dict[str, str] = {}

    def status(self, point_id: str) -> str:
        if point_id in self.failed:
            return "failed"
        s = read_status(run_dir(self.root, point_id))
        if point_id in self.active:
            return "running"
        return "interrupted" if s == "running" else s

    def task_text(self, p: Point) -> str:
        t = current_task(run_dir(self.root, p.id))
        count = (p.config.get("tasks") or {}).get("count")
        return "" if t is None else f"{t + 1}/{count}" if count else str(t + 1)

    def rows(self) -> list[dict]:
        return [
            {
                "id": p.id,
                "status": self.status(p.id),
                "task": self.task_text(p),
                "seconds": f"{self.seconds[p.id]:.1f}" if p.id in self.seconds else "",
                "path": f"runs/{p.id}",
                "log": f"logs/{p.id}.log",
            }
            for p in self.points
        ]

    def write(self) -> list[dict]:
        rows = self.rows()
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["id", "status", "task", "seconds", "path", "log"])
        w.writeheader()
        w.writerows(rows)
        atomic_text(self.root / "status.csv", buf.getvalue())
        return rows

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for p in self.points:
            s = self.status(p.id)
            counts[s] = counts.get(s, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


class Monitor:
    """Refreshes status.csv and a terminal progress bar while runs execute.

    A submitted run counts as running once its log has been written in this sweep (the
    executor may still be queueing it before that).
    """

    def __init__(self, table: StatusTable, submitted: set[str], *, enabled: bool):
        self.table = table
        self.submitted = set(submitted)
        self.results: list[Result] = []
        self.started = time.time()
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # why: the main thread and the refresh thread both update
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.bar = None
        if enabled:
            from tqdm import tqdm

            finished = len(table.points) - len(submitted)
            self.bar = tqdm(total=len(table.points), initial=finished, desc="sweep", unit="run", file=sys.stderr)

    def start(self) -> None:
        self.thread.start()

    def finished(self, result: Result) -> None:
        with self.lock:
            self._finished(result)

    def _finished(self, result: Result) -> None:
        self.submitted.discard(result.id)
        self.table.active.discard(result.id)
        self.table.seconds[result.id] = result.seconds
        if result.status == "failed":
            self.table.failed[result.id] = result.error or "failed"
        self.results.append(result)
        if self.bar is not None:
            self.bar.update(1)
        self._refresh()

    def refresh(self) -> None:
        with self.lock:
            self._refresh()

    def _refresh(self) -> None:
        for pid in list(self.submitted):
            log = self.table.root / "logs" / f"{pid}.log"
            if pid not in self.table.active and log.is_file() and log.stat().st_mtime >= self.started - 1:
                self.table.active.add(pid)
        rows = self.table.write()
        if self.bar is not None:
            running = [f"{r['id'][:24]} task {r['task'] or '-'}" for r in rows if r["status"] == "running"]
            failed = sum(r["status"] == "failed" for r in rows)
            text = f"running {len(running)}" + (f" [{'; '.join(running[:4])}]" if running else "")
            self.bar.set_postfix_str(text + (f" | failed {failed}" if failed else ""), refresh=True)

    def _loop(self) -> None:
        while not self.stopping.wait(REFRESH_S):
            try:
                self.refresh()
            except OSError:
                continue  # why: a file being replaced under us; the next tick reads it

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        if self.bar is not None:
            self.bar.close()


class SweepLock:
    """``OUT/sweep.lock`` (host and pid): one sweep process per directory at a time."""

    def __init__(self, root: Path):
        self.path = root / "sweep.lock"
        self.mine = f"{socket.gethostname()} {os.getpid()}"

    def __enter__(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            host, _, pid = self.path.read_text().strip().partition(" ")
            if host != socket.gethostname() or _alive(int(pid or 0)):
                raise UserError(
                    f"sweep directory {self.path.parent} is in use by process {pid} on {host} "
                    f"(wait for it, or delete {self.path} if that sweep is gone)"
                )
        self.path.write_text(self.mine)
        return self

    def __exit__(self, *exc) -> None:
        if self.path.is_file() and self.path.read_text().strip() == self.mine:
            self.path.unlink()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
