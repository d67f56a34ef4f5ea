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
import importlib.util
import io
import json
import os
import shutil
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
from plasticlab.sweep.executors import EXECUTORS, Executor, make_executor
from plasticlab.sweep.slurm import settings
from plasticlab.sweep.spec import Point, Sweep, load_sweep, text

REFRESH_S = 1.0
"""Seconds between refreshes of the progress line and status.csv."""
PROBE_S = 5.0
"""Seconds to wait for a Ray cluster's address to accept a connection before the sweep gives up."""
LIVE_LINES = 8
"""Running runs shown under the progress bar on a terminal (the rest are counted)."""


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
    slurm: dict | None = None,
) -> Path:
    """Run every (grid point, seed) of ``sweep`` that is not finished yet.

    Args:
        sweep: sweep file path or mapping (``base``, ``grid``, ``seeds``).
        executor: ``local`` (in process), ``process`` (pool of ``workers``), ``ray`` or ``slurm``.
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
        slurm: options of the slurm executor (partition, time, mem, cpus, gpus, array, extra,
            local; ``plasticlab.sweep.slurm``); they update the sweep file's ``slurm:`` section.

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
    if slurm and any(v is not None for v in slurm.values()) and executor != "slurm":
        raise UserError(f"--slurm-* options are for --executor slurm (not {executor})")
    slurm = settings(spec.slurm, slurm) if executor == "slurm" else None
    points = spec.points()
    root = Path(out) if out is not None else Path("sweeps") / spec.name
    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise UserError(f"sweep directory {root} is a file (choose a directory path for --out)")
    statuses = {p.id: read_status(run_dir(root, p.id)) for p in points}  # why: read only; nothing written yet
    waiting = [p for p in points if statuses[p.id] not in FINAL and (retry_failed or statuses[p.id] != "failed")]
    preflight(waiting, len(points), where(executor, address, slurm), gpus_per_run if executor == "ray" else 0)
    if executor == "ray" and address:
        probe_address(address)
    created = not root.exists()
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
        try:
            ex = start_executor(
                executor,
                workers=workers,
                address=address,
                cpus_per_run=cpus_per_run,
                gpus_per_run=gpus_per_run,
                max_retries=max_retries,
                folder=root / "slurm",
                slurm=slurm,
            )
        except UserError:
            if created:  # why: a sweep that never started leaves no directory behind
                shutil.rmtree(root, ignore_errors=True)
            raise
        monitor = Monitor(table, {p.id for p in todo}, enabled=progress, labels=run_labels(points))
        start = time.perf_counter()

        def forward(_signum: int) -> None:  # why: pool workers train in their own processes
            for pid in getattr(ex, "pids", list)():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            getattr(ex, "stop", lambda: None)()  # why: slurm tasks are stopped by their executor

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
        say(summary_table(root, table, monitor.results, time.perf_counter() - start))
    return root


def summary_table(root: Path, table: StatusTable, results: list[Result], seconds: float) -> str:
    """The lines printed when a sweep ends: counts by status (every run of the sweep), then each run that
    failed in this sweep with its error and log."""
    counts = table.counts()
    lines = [f"sweep {root}: {len(table.points)} runs, this sweep took {seconds:.1f} s",
             f"  {'status':<12} {'runs':>5}"]
    lines += [f"  {s:<12} {n:>5}" for s, n in sorted(counts.items())]
    failures = [r for r in results if r.status == "failed"]
    if failures:
        lines.append(f"failed runs ({len(failures)}):")
        lines += [f"  {r.id}: {r.error} — log: {r.log}" for r in failures]
    return "\n".join(lines)


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

    def counts(self) -> dict[str, int]:
        """Runs by status."""
        counts: dict[str, int] = {}
        for p in self.points:
            s = self.status(p.id)
            counts[s] = counts.get(s, 0) + 1
        return counts


class Monitor:
    """Refreshes status.csv while runs execute, and shows progress on stderr (``enabled``).

    On a terminal: a live bar of runs finished, with one line per running run under it (its
    ``labels`` entry in full, cut from the left only when wider than the terminal, and its task).
    Off a terminal (a batch log, a pipe): no ``\\r``-refreshed bar, one plain line per finished run
    (``[k/N] status seconds id``, and the log of a failed run).

    A submitted run counts as running once its log has been written in this sweep (the
    executor may still be queueing it before that).
    """

    def __init__(self, table: StatusTable, submitted: set[str], *, enabled: bool,
                 labels: dict[str, str] | None = None):
        self.table = table
        self.submitted = set(submitted)
        self.results: list[Result] = []
        self.started = time.time()
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # why: the main thread and the refresh thread both update
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.labels = labels or {}
        self.finished_count = len(table.points) - len(submitted)
        self.out = sys.stderr  # why: the local executor redirects sys.stderr into a run's log while it runs
        self.lines = enabled and not getattr(self.out, "isatty", lambda: False)()
        """Print one line per finished run (off a terminal)."""
        self.bar = None
        self.running_lines: list = []
        """The live display's lines under the bar, one per running run."""
        if enabled and not self.lines:
            from tqdm import tqdm

            self.bar = tqdm(total=len(table.points), initial=self.finished_count, desc="sweep", unit="run",
                            file=self.out, dynamic_ncols=True)

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
        self.finished_count += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.lines:
            n = len(self.table.points)
            log = f"  log: {result.log}" if result.status == "failed" else ""
            print(f"[{self.finished_count:>{len(str(n))}}/{n}] {result.status:<8} {result.seconds:8.1f} s  "
                  f"{result.id}{log}", file=self.out, flush=True)
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
            running = [r for r in rows if r["status"] == "running"]
            failed = sum(r["status"] == "failed" for r in rows)
            self.bar.set_postfix_str(f"running {len(running)}" + (f" | failed {failed}" if failed else ""),
                                     refresh=True)
            texts = [f"  {self.labels.get(r['id'], r['id'])}  (task {r['task'] or '-'})" for r in running]
            if len(texts) > LIVE_LINES:
                texts = texts[: LIVE_LINES - 1] + [f"  … and {len(texts) - LIVE_LINES + 1} more running"]
            self._show(texts)

    def _show(self, texts: list[str]) -> None:
        """Put ``texts`` on the lines under the bar (lines no longer needed are blanked)."""
        from tqdm import tqdm

        width = shutil.get_terminal_size((100, 24)).columns
        while len(self.running_lines) < len(texts):
            self.running_lines.append(tqdm(total=0, position=len(self.running_lines) + 1, bar_format="{desc}",
                                           file=self.out, leave=False))
        for i, line in enumerate(self.running_lines):
            line.set_description_str(fit(texts[i], width - 1) if i < len(texts) else "", refresh=True)

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
        for line in reversed(self.running_lines):
            line.close()
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


# --- before any run starts: what the runs need, checked once ---------------------------------------


def where(executor: str, address: str | None, slurm: dict | None = None) -> set[str]:
    """What ``preflight`` can check on this machine for runs of ``executor``: ``data`` (datasets
    present), ``packages`` (optional packages installed), ``device`` (CUDA where a run asks for it).

    Runs of ``local``, ``process`` and a local Ray execute here: everything. A Ray cluster's nodes
    have their own files, packages and devices: nothing. Slurm nodes share this file system and
    environment but not its devices (a login node has no GPU), unless the tasks run here (``local``).
    """
    if executor in ("local", "process") or (executor == "ray" and not address):
        return {"data", "packages", "device"}
    if executor == "slurm":
        return {"data", "packages", "device"} if (slurm or {}).get("local") else {"data", "packages"}
    return set()


def preflight(points: list[Point], total: int, checks: set[str], gpus_per_run: float = 0) -> None:
    """Check once what ``points`` (the runs about to start or resume) need, before any of them starts.

    Raises:
        UserError: one line naming each missing thing (a dataset, an optional package, a CUDA
            device), how many runs need it and the fix — instead of every run failing with it.
    """
    if not points or not checks:
        return
    from plasticlab.config import load_config

    problems: dict[str, set[str]] = {}  # message → ids of the runs it stops

    def need(message: str | None, p: Point) -> None:
        if message:
            problems.setdefault(message, set()).add(p.id)

    seen: dict[tuple, str | None] = {}
    for p in points:
        cfg = load_config(p.config)
        if "data" in checks and getattr(cfg.tasks, "uses_data", True):
            key = ("data", cfg.data.name, cfg.data.root)
            if key not in seen:
                seen[key] = dataset_problem(cfg.data.name, cfg.data.root)
            need(seen[key], p)
        if "packages" in checks:
            from plasticlab.store.loggers import REQUIRES

            needs = [*getattr(cfg.model, "requires", ()), *getattr(cfg.tasks, "requires", ())]
            needs += [REQUIRES[name] for name in cfg.engine.loggers if name in REQUIRES]
            for module, message in needs:
                if ("module", module) not in seen:
                    seen[("module", module)] = None if importlib.util.find_spec(module) else message
                need(seen[("module", module)], p)
        if "device" in checks and cfg.engine.device == "cuda" and not cuda_available():
            need("engine.device: cuda, but this machine has no CUDA device (set engine.device: auto or cpu)", p)
    if "device" in checks and gpus_per_run > 0 and not cuda_available():
        problems.setdefault(f"--gpus-per-run {gpus_per_run:g}, but this machine has no GPU, so a local Ray would "
                            "never start them (use --gpus-per-run 0, or --address to join a cluster with GPUs)",
                            set()).update(p.id for p in points)
    if problems:
        stopped = set().union(*problems.values())
        what = "; ".join(msg + (f" [{len(ids)} runs]" if len(problems) > 1 else "") for msg, ids in problems.items())
        raise UserError(f"sweep: {len(stopped)} of {total} runs cannot start, none was started: {what}")


def dataset_problem(name: str, root: str | None) -> str | None:
    """The one-line error a run would raise for dataset ``name`` absent or known bad; None when present.

    The same checks as ``plasticlab.data.read_arrays`` (recorded-bad files, then missing files),
    without reading the data."""
    from plasticlab.data.base import dataset_dir, get_spec, missing_error, missing_files
    from plasticlab.data.fetch import bad_error

    spec = get_spec(name)
    if spec.embedded:
        return None
    folder = dataset_dir(spec, root)
    if err := bad_error(spec, folder, root):
        return str(err)
    missing = missing_files(spec, folder)
    return str(missing_error(spec, folder, missing, root)) if missing else None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def probe_address(address: str, timeout_s: float = PROBE_S) -> None:
    """Fail fast when a Ray cluster's ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts no connection.

    Without this, ``ray.init`` retries for minutes, prints many lines and ends in a ConnectionError.
    ``auto`` (find the cluster of this machine) is left to Ray.

    Raises:
        UserError: the address is malformed or unreachable (one line, with the fix).
    """
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address}: expected auto or HOST:PORT (the address `ray start --head` prints)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        raise UserError(f"--address {address}: cannot reach the Ray cluster ({why}); check that its head node is "
                        f"up (`ray status` there) and that this machine can reach {host}:{port}") from None


def start_executor(name: str, **options) -> Executor:
    """``make_executor``, with a cluster that cannot be joined as one line instead of a traceback."""
    try:
        return make_executor(name, **options)
    except UserError:
        raise
    except Exception as e:  # why: ray.init raises ConnectionError, TimeoutError or auth errors when joining fails
        if not (isinstance(e, ConnectionError | TimeoutError) or options.get("address")):
            raise
        where_ = f" --address {options['address']}" if options.get("address") else ""
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        hint = ""
        if any(w in str(e).lower() for w in ("auth", "token", "unauthenticated", "permission denied")):
            hint = ("; the cluster uses token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or "
                    "RAY_AUTH_TOKEN_PATH) to the cluster's token, e.g. from `ray get-auth-token` on its head node")
        raise UserError(f"--executor {name}{where_}: cannot connect: {type(e).__name__}: {why}{hint}") from None


# --- labels of runs on a terminal ---------------------------------------------------------------------


def run_labels(points: list[Point]) -> dict[str, str]:
    """id → a short label that tells the runs of a sweep apart: the grid values that differ between
    its points (keys shortened to their last part unless two keys share it) and the seed, in full."""
    shown = lambda p, k: text(p.values[k]) if k in p.values else None  # why: a union grid's point may lack k
    keys = [k for k in dict.fromkeys(k for p in points for k in p.values)
            if len({shown(p, k) for p in points}) > 1]
    last = [k.split(".")[-1] for k in keys]
    names = [k if last.count(k.split(".")[-1]) > 1 else k.split(".")[-1] for k in keys]
    out = {p.id: " ".join([*(f"{n}={shown(p, k)}" for n, k in zip(names, keys, strict=True) if k in p.values),
                           f"s{p.seed}"]) for p in points}
    return out if len(set(out.values())) == len(out) else {p.id: p.id for p in points}


def fit(line: str, width: int) -> str:
    """``line`` cut from the left to ``width`` characters (the tail, which tells runs apart, stays)."""
    return line if len(line) <= width else "…" + line[len(line) - width + 1 :]
