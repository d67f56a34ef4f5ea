"""The run-directory lifecycle, written once for every entry point (``run``, packed sweeps, transfer).

A run directory goes through::

    open (lock; on resume: read the checkpoint)  →  begin (create or mark resumed)
        →  rows and checkpoints  →  finish: done | diverged | interrupted | failed

* **Lock**: an exclusive ``flock`` on ``RUN/.lock`` is held from ``open``/``begin`` until the
  end; a second process resuming or writing the same directory gets a one-line error. The
  kernel drops the lock when the process dies, so a killed run never leaves it stuck.
* **Status repair**: a run whose checkpoint says it finished (killed after its last checkpoint,
  before ``provenance.json`` said so) is marked ``done`` when opened again.
* **Stop on signals**: ``graceful_stop()`` turns SIGINT/SIGTERM/SIGUSR2 into a flag the loop polls
  between steps; the run then writes a checkpoint and ends ``interrupted`` (resumable).

Everything here is files and processes; no nn code, no config parsing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

from plasticlab.registry import UserError
from plasticlab.store.loggers import tee
from plasticlab.store.rundir import (
    MetricsWriter,
    atomic_write,
    load_checkpoint,
    now,
    read_json,
    save_checkpoint,
    update_provenance,
    write_json,
)

LOCK = ".lock"


class RunDirectory:
    """One run directory from open to finish. Usage (what ``api.run`` does)::

        rd = RunDirectory(path)
        state = rd.open_resume(device)        # resume only: lock, read the checkpoint
        rd.begin(config_text, provenance, loggers, state)   # create (or mark resumed); lock
        ... loop.run(..., sinks=[rd.sink], saves=[rd.save]) ...
        rd.finish("done")                     # or "diverged" / "interrupted" / "failed"
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock_fd: int | None = None
        self.writer: MetricsWriter | None = None
        self.loggers: list = []
        self.sink = None
        self.last: dict | None = None

    # ------------------------------------------------------------ lock

    def lock(self) -> None:
        """Take the directory's exclusive lock, or raise UserError if another process holds it."""
        import fcntl

        if self.lock_fd is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"run directory {self.path} is in use by another process (pid {holder}); wait for it "
                            "to end, or stop it, then --resume") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.lock_fd = fd

    def unlock(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # releases the flock
            self.lock_fd = None

    # ------------------------------------------------------------ open / begin

    def is_run(self) -> bool:
        return (self.path / "config.yaml").is_file()

    def check_empty(self) -> None:
        """A new run needs an empty (or absent) directory."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run directory {self.path} is a file (choose a directory path for --out)")
        if self.path.exists() and any(p.name != LOCK for p in self.path.iterdir()):
            raise UserError(f"run directory {self.path} is not empty (choose another --out, or --resume it)")

    def open_resume(self, map_location) -> dict | None:
        """Lock an existing run directory and return its latest checkpoint (None if it has none).

        A checkpoint marked ``done`` repairs a status left ``running``/``interrupted``/``failed``
        by a kill after the last checkpoint; the caller then has nothing to train.
        """
        if not self.is_run():
            raise UserError(f"cannot resume {self.path}: no config.yaml there (is it a run directory?)")
        self.lock()
        try:
            state = load_checkpoint(self.path, map_location=map_location)
        except Exception as e:  # why: a damaged checkpoint is the user's to fix, in one line
            self.unlock()
            raise UserError(f"cannot resume {self.path}: its checkpoint is damaged ({type(e).__name__}); "
                            "start the run again in a new directory") from None
        if state is not None and state.get("done"):
            prov = self.provenance()
            if prov.get("status") != "done":
                update_provenance(self.path, status="done", end=prov.get("end") or now(), repaired=True)
            self.unlock()
        return state

    def provenance(self) -> dict:
        try:
            return read_json(self.path / "provenance.json")
        except (OSError, ValueError):
            return {}

    def begin(self, config_text: str, provenance: dict, loggers: list | None = None, state: dict | None = None,
              changed: dict | None = None, rows: bool = True) -> None:
        """Create the run (config.yaml, provenance.json) or mark a resumed one running; open the rows.

        Args:
            state: the checkpoint resumed from; ``metrics.jsonl`` is cut back to its length.
            changed: on resume, the config keys changed (recorded in provenance, and
                ``config_text`` replaces config.yaml).
            rows: open ``metrics.jsonl`` (a transfer directory keeps its own result files).
        """
        self.lock()
        self.clean_temporaries()
        resumed = (self.path / "provenance.json").exists()
        if not resumed:
            atomic_write(self.path / "config.yaml", config_text.encode())
            write_json(self.path / "provenance.json", provenance)
        else:
            fields: dict = {"status": "running", "resumed": True}
            if changed:
                atomic_write(self.path / "config.yaml", config_text.encode())
                fields["resume_changes"] = [*self.provenance().get("resume_changes", []), {"at": now(), **changed}]
            update_provenance(self.path, **fields)
        (self.path / "error.log").unlink(missing_ok=True)
        if rows:
            self.writer = MetricsWriter(self.path, truncate_to=state["metrics_bytes"] if state else 0)
        self.loggers = list(loggers or [])
        self.sink = tee(self.writer, *self.loggers) if self.loggers else self.writer

    def clean_temporaries(self) -> None:
        """Remove temporary files a killed process left (``.NAME.tmpPID``)."""
        for d in (self.path, self.path / "checkpoints"):
            if d.is_dir():
                for p in d.glob(".*.tmp*"):
                    p.unlink(missing_ok=True)

    # ------------------------------------------------------------ during the run

    def save(self, state: dict) -> None:
        """Write the checkpoint atomically with the metrics length it matches."""
        self.last = state
        self.writer.sync()  # the rows it counts are on disk before the checkpoint is
        save_checkpoint(self.path, state, self.writer.tell())

    # ------------------------------------------------------------ finish

    def finish(self, status: str, message: str | None = None) -> None:
        """End the run: ``done`` (the last checkpoint is marked finished), ``diverged`` (a row says
        why), ``interrupted`` (resumable), or ``failed`` (the traceback goes to error.log)."""
        try:
            if status == "done" and self.last is not None:
                save_checkpoint(self.path, {**self.last, "done": True}, self.writer.tell())
            if status == "diverged" and self.writer is not None:
                self.writer({"event": "diverged", "message": message})
        except BaseException:
            status = "failed"
            raise
        finally:
            # why: on a full disk these writes fail too; the first error is the one to report
            with contextlib.suppress(OSError, UserError):
                if status == "failed":
                    atomic_write(self.path / "error.log", (message or traceback.format_exc()).encode())
            if self.writer is not None:
                with contextlib.suppress(OSError):
                    self.writer.close()
            for logger in self.loggers:
                logger.close()
            with contextlib.suppress(OSError, UserError):
                update_provenance(self.path, status=status, end=now())
            self.unlock()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)
"""Signals ``graceful_stop`` turns into a stop. SIGUSR2 is what submitit (``--executor slurm``) and
``sbatch --signal=USR2@SECONDS`` send before a time limit or a preemption."""


class StopFlag:
    """Set by a stop signal (``STOP_SIGNALS``) inside ``graceful_stop``; the loop polls it between steps."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def graceful_stop(on_signal=None) -> Iterator[StopFlag]:
    """SIGINT, SIGTERM and SIGUSR2 set the yielded flag instead of killing the process (main thread only).

    ``on_signal(signum)``, if given, is called too (a sweep forwards the stop to its workers).
    A second SIGINT while stopping raises KeyboardInterrupt at once (the user insists)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        if flag.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signum = signum
        if on_signal is not None:
            on_signal(signum)

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
