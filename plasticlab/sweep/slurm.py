"""The ``slurm`` executor: each unit (a run, or a pack) is one task of a Slurm array job, via submitit.

Usage::

    plasticlab sweep my_sweep.yaml --executor slurm --slurm-partition gpu --slurm-time 240 --slurm-gpus 1
    run_sweep("my_sweep.yaml", executor="slurm", slurm={"partition": "gpu", "time": 240, "gpus": 1})

Options (``--slurm-KEY`` on the command line, or a ``slurm:`` mapping in the sweep file; the
command line wins, ``extra`` is merged key by key):

    partition  Slurm partition (default: the cluster's)
    time       minutes per task (default 60; with local: no limit unless set)
    mem        GB of memory per task (default: the cluster's)
    cpus       CPUs per task (default 1; also the torch threads of a run whose engine.threads is 0)
    gpus       GPUs per task (default 0)
    array      at most this many tasks at once (Slurm ``--array=0-N%array``; local: cores // cpus)
    extra      more sbatch options, ``{account: abc, qos: high}`` or ``--slurm-extra account=abc``
    local      run the tasks on this machine with submitit's local executor (automatic when
               ``sbatch`` is not on PATH)

**Requeue.** A task gets SIGUSR2 (submitit's ``--signal=USR2@90``) 90 s before its time limit,
and on clusters that send it, at preemption. The engine's ``graceful_stop`` handles SIGUSR2 like
SIGTERM: the run finishes its step, writes a checkpoint, is marked ``interrupted`` and raises
``Interrupted``. ``SlurmTask`` then hands over to submitit's handler, which calls
``SlurmTask.checkpoint`` (the same unit again: the run directory is the state), requeues the task
(``scontrol requeue``; locally: the task restarts) and exits; the restarted task resumes every
run from its checkpoint, so its ``metrics.jsonl`` equals an uninterrupted run's. SIGTERM (what
Slurm sends at preemption, and on ``scancel``) also checkpoints; the task then waits for the
USR2 that some clusters send next, and otherwise exits without a result: Slurm requeues a
preempted task itself, and a cancelled one is reported failed (a re-run of the sweep resumes it).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from plasticlab.registry import UserError
from plasticlab.sweep.execute import Interrupted, Result, Unit, execute_unit, jobs_of, with_threads

SLURM_INSTALL = "pip install 'plasticlab[slurm]'"
OPTIONS = ("partition", "time", "mem", "cpus", "gpus", "array", "extra", "local")
DEFAULT_TIME = 60
"""Minutes per task on Slurm when ``time`` is not set."""
LOCAL_TIME = 7 * 24 * 60
"""Minutes per task with the local executor when ``time`` is not set (no limit in practice)."""
MAX_TIMEOUTS = 20
"""Times a task may reach its time limit and be requeued (each requeue resumes its runs)."""
GRACE_S = 60.0
"""After a SIGTERM on Slurm, seconds a task waits for the preemption signal that may follow."""
STOP_WAIT_S = 120.0
"""When the sweep stops, seconds it waits for its cancelled tasks to checkpoint and end."""
RESERVED = ("array", "output", "error", "signal", "open-mode", "job-name")
"""sbatch options the executor sets itself (an ``extra`` that changed them would break requeue or logs)."""


# ---------------------------------------------------------------- options


def _whole(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _extra(raw, name: str) -> dict:
    """``extra`` as {sbatch option: value}: from a mapping, or from ``KEY=VALUE`` / ``KEY`` strings."""
    if isinstance(raw, (list, tuple)):
        items = {}
        for item in raw:
            if not isinstance(item, str) or not item.strip("-= "):
                raise UserError(f"{name}: expected KEY=VALUE (an sbatch option, e.g. account=abc), got {item!r}")
            key, eq, value = item.partition("=")
            items[key] = value if eq else True
        raw = items
    if not isinstance(raw, dict):
        raise UserError(f"{name}: expected a mapping of sbatch option → value, e.g. {{account: abc}}, got {raw!r}")
    out = {}
    for key, value in raw.items():
        flag = str(key).strip().lstrip("-").replace("_", "-")
        if not flag or not isinstance(key, str):
            raise UserError(f"{name}: {key!r} is not an sbatch option name")
        if flag in RESERVED:
            raise UserError(f"{name}: {flag} is set by the executor (allowed: any other sbatch option)")
        if flag in ("partition", "time", "mem", "cpus-per-task", "gpus-per-node"):
            raise UserError(f"{name}: set {flag} with its own option (partition, time, mem, cpus, gpus)")
        if value is None or isinstance(value, (dict, list)) or value is False:
            raise UserError(f"{name}: {flag}: expected a text or number value (or true for a bare flag), got {value!r}")
        out[flag] = value
    return out


def check_options(raw, where: str, flags: bool = False) -> dict:
    """Checked ``slurm`` options (only the keys given); unknown keys and bad values are one-line errors.

    Args:
        raw: a mapping of ``OPTIONS`` keys (None = none).
        where: what the options are, for messages (``"sweep file F: slurm"``).
        flags: name each option as its command-line flag (``--slurm-time``) in messages.
    """
    name: Callable[[str], str] = (lambda k: f"--slurm-{k}") if flags else (lambda k: f"{where}: {k}")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping of options ({', '.join(OPTIONS)}), got {raw!r}")
    out: dict = {}
    for key, value in raw.items():
        if key not in OPTIONS:
            raise UserError(f"{name(str(key))}: unknown slurm option (allowed: {', '.join(OPTIONS)})")
        if value is None:
            continue
        if key == "partition" and not (isinstance(value, str) and value.strip()):
            raise UserError(f"{name(key)}: expected a partition name, got {value!r}")
        if key == "time" and not _whole(value, 1):
            raise UserError(f"{name(key)}: expected whole minutes ≥ 1, got {value!r}")
        if key == "mem" and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                 and math.isfinite(value) and value > 0):
            raise UserError(f"{name(key)}: expected GB of memory > 0, got {value!r}")
        if key in ("cpus", "array") and not _whole(value, 1):
            raise UserError(f"{name(key)}: expected a whole number ≥ 1, got {value!r}")
        if key == "gpus" and not _whole(value, 0):
            raise UserError(f"{name(key)}: expected a whole number ≥ 0, got {value!r}")
        if key == "local" and not isinstance(value, bool):
            raise UserError(f"{name(key)}: expected true or false, got {value!r}")
        out[key] = _extra(value, name(key)) if key == "extra" else value
    return out


def settings(from_file: dict | None, given: dict | None) -> dict:
    """The options a slurm sweep uses: the sweep file's ``slurm:`` (checked) updated by ``given``
    (``run_sweep(slurm=...)`` / ``--slurm-*``, checked here); ``extra`` is merged key by key."""
    file_opts = check_options(from_file, "sweep: slurm")
    opts = check_options({k: v for k, v in (given or {}).items() if v is not None}, "slurm options", flags=True)
    return {**file_opts, **opts, "extra": {**file_opts.get("extra", {}), **opts.get("extra", {})}}


# ---------------------------------------------------------------- inside a task


def preempt_signal() -> int:
    """The signal submitit sends before a time limit or a preemption (``SUBMITIT_PREEMPT_SIGNAL``, default USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


class SlurmTask:
    """What each array task runs: ``execute_unit(unit)``, requeued by submitit on a timeout or preemption.

    ``checkpoint`` (submitit calls it from its preemption handler) resubmits the same unit: the run
    directories are the state, and ``execute`` resumes a run whose directory exists.
    """

    def __init__(self, grace_s: float = GRACE_S):
        self.grace_s = grace_s

    def __call__(self, unit: Unit) -> list[Result]:
        try:
            return execute_unit(unit)
        except Interrupted as e:  # the runs wrote their checkpoints and are marked interrupted
            self.stopped(e.signum)
            raise

    def checkpoint(self, unit: Unit):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, unit)

    def stopped(self, signum: int | None) -> None:
        """After a graceful stop inside a submitit task: requeue, wait for the requeue, or end with no result."""
        where = os.environ.get("SUBMITIT_EXECUTOR")
        if where not in ("slurm", "local"):
            return  # not inside a submitit task (a test calling it directly): Interrupted propagates
        sig = preempt_signal()
        requeue = signal.getsignal(sig)  # submitit's handler again, now that graceful_stop has ended
        if callable(requeue):
            if signum == sig:
                requeue(sig, None)  # checkpoint() + requeue + exit; raises if the task may not be requeued
            if where == "slurm":
                # why: Slurm sends SIGTERM at preemption, and some clusters send `sig` right after it
                end = time.monotonic() + self.grace_s
                while time.monotonic() < end:
                    time.sleep(0.5)  # `sig` runs submitit's handler, which requeues and exits
        # why: no result file, so the driver waits for a task that Slurm requeues, and reports a cancelled one
        sys.stdout.flush()
        sys.exit(128 + (signum or signal.SIGTERM))


# ---------------------------------------------------------------- the executor


@contextlib.contextmanager
def import_path() -> Iterator[None]:
    """PYTHONPATH of the submission = this process's sys.path, so tasks import this plasticlab (a checkout, tests)."""
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def reason(error: Exception, job) -> str:
    """One line for a task that raised or ended without a result."""
    parts = re.split(r"^-{4,}$", str(error), flags=re.MULTILINE)
    if len(parts) >= 3:  # FailedJobError: the task's traceback between dashed lines; its last line says why
        lines = [x.strip() for x in parts[1].splitlines() if x.strip()]
        if lines:
            return f"slurm task {job.job_id} failed: {lines[-1]}"
    state = getattr(job, "state", "?")
    return f"slurm task {job.job_id} ended without a result (state {state})"


class SlurmExecutor:
    """Each unit a task of one Slurm array job (submitit ``map_array``), or of submitit's local executor."""

    def __init__(self, folder: str | Path, options: dict | None = None, poll_s: float | None = None):
        try:
            import submitit
        except ImportError:
            raise UserError(f"the slurm executor needs submitit: {SLURM_INSTALL}") from None
        from plasticlab.store.lifecycle import STOP_SIGNALS
        from plasticlab.sweep.executors import cores

        opts = check_options(options, "slurm options", flags=True)
        self.folder = Path(folder)
        sbatch = shutil.which("sbatch")
        self.local = opts.get("local", sbatch is None)
        self.auto = "local" not in opts and self.local
        if not self.local and sbatch is None:
            raise UserError("--executor slurm: sbatch is not on PATH (not a Slurm login node?); "
                            "add --slurm-local to run the tasks on this machine")
        if preempt_signal() not in STOP_SIGNALS:
            say(f"slurm: SUBMITIT_PREEMPT_SIGNAL={os.environ.get('SUBMITIT_PREEMPT_SIGNAL')} is not a signal runs "
                "stop on (USR2, TERM): a requeued task resumes from the last task-end checkpoint")
        self.cpus = opts.get("cpus", 1)
        self.parallel = opts.get("array") or (max(1, cores() // self.cpus) if self.local else None)
        self.poll_s = poll_s if poll_s is not None else (0.2 if self.local else 5.0)
        cluster = "local" if self.local else "slurm"
        try:
            self.ex = submitit.AutoExecutor(folder=self.folder, cluster=cluster, slurm_max_num_timeout=MAX_TIMEOUTS,
                                            local_max_num_timeout=MAX_TIMEOUTS)
        except RuntimeError as e:  # why: e.g. sbatch but no srun on PATH
            raise UserError(f"--executor slurm: {e}".splitlines()[0]) from None
        params = {
            "name": f"plasticlab-{self.folder.parent.name}",
            "timeout_min": opts.get("time", LOCAL_TIME if self.local else DEFAULT_TIME),
            "nodes": 1,
            "tasks_per_node": 1,
            "cpus_per_task": self.cpus,
            "gpus_per_node": opts.get("gpus") or None,  # why: 0 is the default; --gpus-per-node=0 trips some clusters
            "mem_gb": opts.get("mem"),
        }
        if not self.local:
            params.update(slurm_partition=opts.get("partition"), slurm_array_parallelism=self.parallel or 256,
                          slurm_additional_parameters=opts.get("extra") or None)
        self.ex.update_parameters(**params)
        self.running: dict = {}
        self.stopping = False

    def run(self, units: list[Unit]) -> Iterator[Result]:
        if not units:
            return
        todo = [with_threads(u, self.cpus) for u in units]
        task = SlurmTask()
        if self.local:
            why = "sbatch is not on PATH" if self.auto else "--slurm-local"
            say(f"slurm: {why}: {len(todo)} tasks run on this machine (submitit local executor, "
                f"{min(self.parallel, len(todo))} at once); logs in {self.folder}")
        else:
            try:
                with import_path():
                    jobs = self.ex.map_array(task, todo)
            except (RuntimeError, OSError) as e:  # why: sbatch refused (a bad partition, account, limit)
                first = next((x for x in str(e).splitlines() if x.strip()), type(e).__name__)
                raise UserError(f"slurm: sbatch refused the array job: {first.strip()}") from None
            self.running = dict(zip(jobs, todo, strict=True))
            array = jobs[0].job_id.split("_")[0]
            say(f"slurm: submitted array job {array} ({len(jobs)} tasks); logs in {self.folder}; "
                f"stopping this sweep cancels it (scancel {array})")
            todo = []
        while todo or self.running:
            if self.stopping:
                return
            while todo and len(self.running) < self.parallel:  # local: submitted as tasks end
                unit = todo.pop(0)
                with import_path():
                    self.running[self.ex.submit(task, unit)] = unit
            finished = [job for job in self.running if job.done()]
            for job in finished:
                unit = self.running.pop(job)
                try:
                    results = job.result()
                except Exception as e:  # why: the task failed outside a run, was cancelled, or its node died
                    if self.stopping:
                        return
                    why = reason(e, job)
                    results = [Result(j.id, "failed", 0.0, str(job.paths.stderr), why) for j in jobs_of(unit)]
                yield from results
            if not finished:
                time.sleep(self.poll_s)

    def stop(self) -> None:
        """Called from the sweep's signal handler: stop waiting; local tasks get SIGTERM now (they checkpoint)."""
        self.stopping = True
        if self.local:
            self._terminate(list(self.running))

    def close(self) -> None:
        """Cancel the tasks still queued or running (each running run writes a checkpoint first) and wait for them."""
        left = [job for job in self.running if not job.done()]
        self.running = {}
        if not left:
            return
        say(f"slurm: stopping {len(left)} tasks (each running run writes a checkpoint first)")
        if not self.local:
            import subprocess

            subprocess.call(["scancel", *sorted({job.job_id.split("_")[0] for job in left})])
        elif not self.stopping:
            self._terminate(left)
        end, again = time.monotonic() + STOP_WAIT_S, time.monotonic() + 5
        while left and time.monotonic() < end:
            time.sleep(0.2 if self.local else 5.0)
            left = [job for job in left if not job.done()]
            if self.local and left and time.monotonic() > again:
                self._terminate(left)  # why: submitit ignores a SIGTERM that comes before the run trains
                again += 5
        for job in left if self.local else []:
            job.cancel(check=False)  # SIGINT: the controller kills its task

    @staticmethod
    def _terminate(jobs: list) -> None:
        """SIGTERM to local tasks' controllers, which forward it to their tasks."""
        for job in jobs:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(job.job_id), signal.SIGTERM)
