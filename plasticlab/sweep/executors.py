"""Executors: where a sweep's runs execute, behind one interface.

An executor has ``run(jobs) -> iterator of Result`` (results in completion order) and
``close()``. Each job writes only its own run directory and log, so any executor may retry a
run without touching others.

- ``local``: in this process, one run after another.
- ``process``: a pool of N worker processes (spawn), each with torch threads = max(1, cores // N)
  so that workers × threads ≤ cores.
- ``ray``: each run a Ray task declaring ``cpus_per_run``/``gpus_per_run``; ``address`` joins an
  existing cluster (the sweep directory must then be on storage every node sees), otherwise a
  local Ray starts with ``workers`` CPUs. A failed run is retried ``max_retries`` times (Ray
  ``retry_exceptions``); a retry resumes from the run's checkpoint.
- ``slurm``: each unit a task of one Slurm array job (submitit), requeued on a time limit or a
  preemption and resumed from its checkpoint; submitit's local executor when there is no Slurm
  (``plasticlab.sweep.slurm``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Protocol

from plasticlab.registry import UserError
from plasticlab.sweep.execute import Interrupted, Result, Unit, execute_unit, jobs_of, with_threads

EXECUTORS = ("local", "process", "ray", "slurm")
RAY_INSTALL = "pip install 'plasticlab[ray]'"
HINT = " (a script that calls run_sweep with executor='process' must do so under if __name__ == '__main__':)"


class Executor(Protocol):
    def run(self, units: list[Unit]) -> Iterator[Result]:
        """Run every unit (a job, or a pack of jobs); yield one Result per job as they finish."""

    def close(self) -> None: ...


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # why: macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


class LocalExecutor:
    """Runs jobs in this process, one after another."""

    def run(self, units: list[Unit]) -> Iterator[Result]:
        for unit in units:
            yield from execute_unit(unit)

    def close(self) -> None:
        pass


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class ProcessExecutor:
    """A pool of ``workers`` spawned processes; torch threads per worker = max(1, cores // workers)."""

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or cores())
        self.threads = max(1, cores() // self.workers)
        self.pool: ProcessPoolExecutor | None = None

    def run(self, units: list[Unit]) -> Iterator[Result]:
        if not units:
            return
        ctx = mp.get_context("spawn")  # why: fork after torch/threads start is unsafe
        self.pool = ProcessPoolExecutor(
            min(self.workers, len(units)), mp_context=ctx, initializer=_init_worker, initargs=(self.threads,)
        )
        futures = {self.pool.submit(execute_unit, with_threads(u, self.threads)): u for u in units}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    yield from fut.result()
                except Interrupted:
                    raise
                except Exception as e:  # why: a worker that died (e.g. killed for memory) breaks the pool
                    why = f"worker process failed: {type(e).__name__}: {e}{HINT}"
                    yield from (Result(j.id, "failed", 0.0, j.log, why) for j in jobs_of(futures[fut]))

    def pids(self) -> list[int]:
        """The pool's worker processes (a stop is forwarded to them)."""
        return list(getattr(self.pool, "_processes", None) or {})

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class RunFailed(RuntimeError):
    """Raised inside a Ray task for a failed run, so that Ray retries it."""


def _ray_execute(unit: Unit) -> list[Result]:
    results = execute_unit(unit)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise RunFailed(f"{failed[0].error} (log: {failed[0].log})")
    return results


def connect(address: str | None = None, workers: int | None = None) -> bool:
    """Join the Ray cluster at ``address``, or start a local Ray with ``workers`` CPUs.

    Returns:
        True when this call connected (the caller shuts Ray down), False when Ray was already up.
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        # why: ship this plasticlab to the cluster so workers run the driver's code
        env = {"py_modules": [str(Path(__file__).resolve().parents[1])]}
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        # why: local workers import what this process imports (plasticlab from a checkout, tests)
        paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))}}
        ray.init(
            num_cpus=workers or cores(),
            runtime_env=env,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    return True


class RayExecutor:
    """Each job a Ray task with declared resources; joins ``address`` or starts a local Ray."""

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_run: float = 1,
        gpus_per_run: float = 0,
        max_retries: int = 1,
    ):
        try:
            import ray
        except ImportError:
            raise UserError(f"the ray executor needs Ray: {RAY_INSTALL}") from None
        self.ray = ray
        self.started = connect(address, workers)
        self.threads = max(1, int(cpus_per_run))
        self.max_retries = max_retries
        # why: retries are the driver's (not Ray's max_retries), so a lost node or failed run is said, not silent
        self.task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_ray_execute)

    def run(self, units: list[Unit]) -> Iterator[Result]:
        refs = {self.task.remote(with_threads(u, self.threads)): u for u in units}
        tries = dict.fromkeys(refs, 0)
        pending = list(refs)
        while pending:
            ready, pending = self.ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    yield from self.ray.get(ref)
                except Exception as e:  # why: the run failed, or its worker or node died
                    cause = getattr(e, "cause", None) or e
                    why = f"{type(cause).__name__}: {cause}".splitlines()[0]
                    unit, n = refs[ref], tries[ref] + 1
                    if n <= self.max_retries:
                        ids = ", ".join(j.id for j in jobs_of(unit))
                        print(f"plasticlab: {ids} failed on its Ray worker ({why[:160]}); retry {n}/{self.max_retries},"
                              " resuming from its checkpoint", file=sys.stderr, flush=True)
                        new = self.task.remote(with_threads(unit, self.threads))
                        refs[new], tries[new] = unit, n
                        pending.append(new)
                        continue
                    yield from (Result(j.id, "failed", 0.0, j.log, why) for j in jobs_of(unit))

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def make_executor(
    name: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    max_retries: int = 1,
    folder: str | Path | None = None,
    slurm: dict | None = None,
) -> Executor:
    """The executor called ``name`` (local | process | ray | slurm).

    ``folder``: where the slurm executor writes submitit's files and logs (the driver passes
    ``OUT/slurm``); ``slurm``: its options (``plasticlab.sweep.slurm.OPTIONS``).
    """
    if name == "local":
        return LocalExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(
            address=address,
            workers=workers,
            cpus_per_run=cpus_per_run,
            gpus_per_run=gpus_per_run,
            max_retries=max_retries,
        )
    if name == "slurm":
        from plasticlab.sweep.slurm import SlurmExecutor

        return SlurmExecutor(folder if folder is not None else Path("slurm"), slurm)
    raise UserError(f"unknown executor {name!r} (allowed: {', '.join(EXECUTORS)})")
