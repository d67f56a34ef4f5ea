"""Optional loggers: TensorBoard and Weights & Biases (offline), as sinks for metric rows.

A sink is a callable taking one metrics row (the dicts of ``metrics.jsonl``). ``tee`` sends each
row to several sinks, so a run can write ``metrics.jsonl`` and a logger at once; ``replay``
feeds an existing run's rows to a sink (export a finished or running run after the fact).

Scalars logged (nested ``layers`` flattened to ``layers/<layer>/<key>``):
- ``epoch`` rows → ``epoch/<key>`` at global step = the row's ``step`` (optimiser steps so far);
- ``task_end`` rows → ``task/<key>`` at step = the task index (the papers' x axis).

Both are extras (``pip install 'plasticlab[loggers]'``); a missing package is a UserError.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from plasticlab.registry import UserError

Sink = Callable[[dict], None]


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
            raise UserError("TensorBoard logging needs tensorboard: pip install 'plasticlab[loggers]'") from None
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
            raise UserError("W&B logging needs wandb: pip install 'plasticlab[loggers]'") from None
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
