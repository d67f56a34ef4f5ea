"""Optional loggers: TensorBoard and Weights & Biases (offline unless logged in), as sinks for metric rows.

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
    """Log rows to Weights & Biases.

    Each setting is the argument when given, else an environment variable (docs/reports.md):
    ``project`` ← ``WANDB_PROJECT`` (default ``plasticlab``); ``entity`` ← ``WANDB_ENTITY``;
    ``group`` ← ``WANDB_RUN_GROUP``, else the sweep's folder name when ``dir`` is ``SWEEP/runs/<id>``
    (a ``sweep.yaml`` beside ``runs/``); ``tags`` ← ``WANDB_TAGS`` (comma-separated); ``mode`` ←
    ``WANDB_MODE``, else ``online`` when an API key is configured (``WANDB_API_KEY`` or a netrc entry
    for api.wandb.ai, as ``wandb login`` writes) and ``offline`` otherwise (written under ``dir`` only).
    Never hangs: an online start waits at most ``INIT_TIMEOUT`` seconds, and a start that fails
    falls back to offline with one notice on stderr.
    """

    INIT_TIMEOUT = 60

    def __init__(
        self,
        *,
        project: str | None = None,
        dir: str | Path,
        config: dict | None = None,
        name: str | None = None,
        mode: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
    ):
        try:
            import wandb
        except ImportError:
            raise UserError(REQUIRES["wandb"][1]) from None
        self.settings = wandb_settings(dir, project=project, mode=mode, entity=entity, group=group, tags=tags)
        kwargs = dict(dir=str(dir), config=config or {}, name=name, **self.settings)
        try:
            self.run = wandb.init(**kwargs, settings={"init_timeout": self.INIT_TIMEOUT})
        except Exception as e:  # why: no network, a bad key or a timeout must not stop (or hang) the run
            if kwargs["mode"] == "offline":
                raise
            print(f"wandb: online start failed ({type(e).__name__}: {e}); logging offline under {dir}",
                  file=sys.stderr)
            kwargs["mode"] = self.settings["mode"] = "offline"
            self.run = wandb.init(**kwargs)
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


def wandb_logged_in() -> bool:
    """True when a W&B API key is configured: ``WANDB_API_KEY``, or a netrc entry for api.wandb.ai."""
    import os

    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def sweep_name(run_dir: str | Path) -> str | None:
    """The sweep's folder name when ``run_dir`` is ``SWEEP/runs/<id>`` (``SWEEP/sweep.yaml`` exists)."""
    parent = Path(run_dir).resolve().parent
    if parent.name == "runs" and (parent.parent / "sweep.yaml").is_file():
        return parent.parent.name
    return None


def wandb_settings(run_dir: str | Path, *, project: str | None = None, mode: str | None = None,
                   entity: str | None = None, group: str | None = None, tags: list[str] | None = None) -> dict:
    """``project``, ``entity``, ``group``, ``tags`` and ``mode`` for ``wandb.init``: arguments first, then the
    environment (``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_RUN_GROUP``, ``WANDB_TAGS``, ``WANDB_MODE``), then
    the defaults (project ``plasticlab``; group = the sweep's name; mode online only when logged in)."""
    import os

    env = lambda k: os.environ.get(k) or None
    if tags is None and env("WANDB_TAGS"):
        tags = [t.strip() for t in os.environ["WANDB_TAGS"].split(",") if t.strip()]
    return {
        "project": project or env("WANDB_PROJECT") or "plasticlab",
        "entity": entity or env("WANDB_ENTITY"),
        "group": group or env("WANDB_RUN_GROUP") or sweep_name(run_dir),
        "tags": tags or None,
        "mode": mode or env("WANDB_MODE") or ("online" if wandb_logged_in() else "offline"),
    }


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
