"""Optional loggers: TensorBoard and Weights & Biases (offline), as sinks for metric rows.

A sink is a callable taking one metrics row (the dicts of ``metrics.jsonl``). ``tee`` sends each
row to several sinks, so a run can write ``metrics.jsonl`` and a logger at once; ``replay``
feeds an existing run's rows to a sink (export a finished or running run after the fact).

Scalars logged (nested ``layers`` flattened to ``layers/<layer>/<key>``):
- ``epoch`` rows → ``epoch/<key>`` at global step = the row's ``step`` (optimiser steps so far);
- ``task_end`` rows → ``task/<key>`` at step = the task index (the papers' x axis).

Both are extras (``pip install 'plasticlab[loggers]'``); a missing package is a UserError
(``REQUIRES``, which a sweep also checks before it starts any run).

``TaskLines`` follows a run's ``metrics.jsonl`` as it grows and prints one plain line per finished
task: the progress of ``plasticlab run`` when stderr is not a terminal (batch logs, CI).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from plasticlab.registry import UserError

Sink = Callable[[dict], None]

REQUIRES = {
    "tensorboard": ("tensorboard", "TensorBoard logging needs tensorboard: pip install 'plasticlab[loggers]'"),
    "wandb": ("wandb", "W&B logging needs wandb: pip install 'plasticlab[loggers]'"),
}
"""``engine.loggers`` name → (module it imports, the one-line error when that module is missing)."""


def tee(*sinks: Sink) -> Sink:
    """A sink that passes every row to each of ``sinks`` in order."""

    def sink(row: dict) -> None:
        for s in sinks:
            s(row)

    return sink


def scalars(row: dict) -> tuple[str, int, dict[str, float]] | None:
    """(prefix, step, {name: value}) of a row's finite numbers; None for rows that are not logged."""
    if row.get("event") == "epoch" and isinstance(row.get("step"), int):
        prefix, step = "epoch", row["step"]
    elif row.get("event") == "task_end" and isinstance(row.get("task"), int):
        prefix, step = "task", row["task"]
    else:
        return None
    out: dict[str, float] = {}

    def add(name: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{name}/{k}", v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)

    for k, v in row.items():
        if k not in ("event", "task", "step", "epoch"):
            add(k, v)
    return prefix, step, out


class TensorBoardSink:
    """Write rows as TensorBoard scalars under ``log_dir`` (``tensorboard --logdir log_dir``)."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(REQUIRES["tensorboard"][1]) from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def __call__(self, row: dict) -> None:
        found = scalars(row)
        if found is None:
            return
        prefix, step, values = found
        for name, v in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", v, global_step=step)
        if prefix == "task":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """Log rows to Weights & Biases; ``mode="offline"`` (default) writes under ``dir`` only."""

    def __init__(
        self,
        *,
        project: str = "plasticlab",
        dir: str | Path,
        config: dict | None = None,
        name: str | None = None,
        mode: str = "offline",
    ):
        try:
            import wandb
        except ImportError:
            raise UserError(REQUIRES["wandb"][1]) from None
        self.run = wandb.init(project=project, dir=str(dir), config=config or {}, name=name, mode=mode)
        self.run.define_metric("task/*", step_metric="task/index")
        self.run.define_metric("epoch/*", step_metric="epoch/step")

    def __call__(self, row: dict) -> None:
        found = scalars(row)
        if found is None:
            return
        prefix, step, values = found
        key = "task/index" if prefix == "task" else "epoch/step"
        self.run.log({key: step, **{f"{prefix}/{k}": v for k, v in values.items()}})

    def close(self) -> None:
        self.run.finish()


def replay(run_dir: str | Path, sink: Sink) -> int:
    """Feed the rows of ``run_dir/metrics.jsonl`` to ``sink``; returns the number of rows."""
    from plasticlab.store import read_metrics

    rows = read_metrics(Path(run_dir))
    for row in rows:
        sink(row)
    return len(rows)


class TaskLines:
    """One plain line per finished task of the run in ``run_dir``, read from its growing ``metrics.jsonl``::

        task 3/10 done  step 1200/4000  train_acc 0.9123  test_acc 0.8810

    Call ``poll()`` whenever convenient (``plasticlab run`` does after every epoch row, and once at
    the end): it reads only the bytes appended since the last call, and prints each ``task_end`` row
    once. Tasks finished before this object was made (a resumed run) are not printed again.
    """

    def __init__(self, run_dir: str | Path, file: TextIO | None = None):
        self.run_dir = Path(run_dir)
        self.file = file
        self.total_steps: int | None = None
        """Steps of the whole run, when known (``plasticlab run`` sets it from its progress callback)."""
        self.count: int | None = None
        self.offset = 0
        self.tail = b""
        self.printed: set[int] = set()
        self.feed(self._read(), show=False)

    def _read(self) -> bytes:
        path = self.run_dir / "metrics.jsonl"
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                if size < self.offset:  # why: a resumed run cuts the file back to its checkpoint
                    self.offset, self.tail = 0, b""
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return b""
        self.offset += len(data)
        return data

    def feed(self, data: bytes, show: bool = True) -> None:
        *lines, self.tail = (self.tail + data).split(b"\n")
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # why: a partial line after the file was cut back, or a foreign line
            if isinstance(row, dict) and row.get("event") == "task_end" and isinstance(row.get("task"), int):
                if row["task"] not in self.printed and show:
                    print(self.line(row), file=self.file or sys.stderr, flush=True)
                self.printed.add(row["task"])

    def poll(self) -> None:
        self.feed(self._read())

    def line(self, row: dict) -> str:
        if self.count is None:
            self.count = self._count()
        t = row["task"]
        parts = [f"task {t + 1}/{self.count} done" if self.count else f"task {t + 1} done"]
        if isinstance(row.get("step"), int):
            parts.append(f"step {row['step']}" + (f"/{self.total_steps}" if self.total_steps else ""))
        for key in ("train_acc", "test_acc"):
            if isinstance(row.get(key), (int, float)):
                parts.append(f"{key} {row[key]:.4f}")
        return "  ".join(parts)

    def _count(self) -> int | None:
        import yaml

        try:
            cfg = yaml.safe_load((self.run_dir / "config.yaml").read_text())
            count = cfg["tasks"]["count"]
        except (OSError, yaml.YAMLError, TypeError, KeyError):
            return 0
        return count if isinstance(count, int) else 0
