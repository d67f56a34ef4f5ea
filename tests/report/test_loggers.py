"""Logger sinks: rows become scalars at the right steps; tee and replay."""

from __future__ import annotations

import json
import math

import pytest

from plasticlab.store.loggers import TensorBoardSink, replay, scalars, tee

EPOCH = {
    "event": "epoch",
    "task": 0,
    "epoch": 1,
    "alpha": None,
    "phase": "task",
    "step": 46,
    "steps": 23,
    "train_loss": 0.5,
    "train_acc": 0.8,
}
TASK_END = {
    "event": "task_end",
    "task": 2,
    "step": 69,
    "train_acc": 0.9,
    "test_acc": None,
    "train_loss": math.nan,
    "dormant_fraction": 0.25,
    "layers": {"0": {"dormant_fraction": 0.5}},
}


def test_scalars_of_rows():
    assert scalars(EPOCH) == ("epoch", 46, {"steps": 23.0, "train_loss": 0.5, "train_acc": 0.8})
    prefix, step, values = scalars(TASK_END)
    assert (prefix, step) == ("task", 2)
    assert values == {"train_acc": 0.9, "dormant_fraction": 0.25, "layers/0/dormant_fraction": 0.5}
    assert scalars({"event": "phase", "task": 0}) is None


def test_tee_and_replay(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps(EPOCH) + "\n" + json.dumps(TASK_END) + "\n")
    a, b = [], []
    assert replay(tmp_path, tee(a.append, b.append)) == 2
    assert a == b and [r["event"] for r in a] == ["epoch", "task_end"]


def test_tensorboard_sink_writes_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = TensorBoardSink(tmp_path / "tb")
    for row in (EPOCH, TASK_END, {**TASK_END, "task": 3, "train_acc": 0.7}):
        sink(row)
    sink.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("task/train_acc")] == [(2, 0.9), (3, 0.7)]
    assert [(e.step, e.value) for e in acc.Scalars("epoch/train_loss")] == [(46, 0.5)]
    assert "task/layers/0/dormant_fraction" in acc.Tags()["scalars"]


def test_wandb_offline_sink_logs_to_its_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from plasticlab.store.loggers import WandbSink

    monkeypatch.setenv("WANDB_SILENT", "true")
    sink = WandbSink(dir=tmp_path, config={"seed": 0}, name="t")
    sink(EPOCH)
    sink(TASK_END)
    summary = dict(sink.run.summary)
    sink.close()
    assert summary["task/train_acc"] == 0.9 and summary["task/index"] == 2 and summary["epoch/step"] == 46
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def test_engine_loggers_key_writes_tensorboard_events(tmp_path, tiny):
    pytest.importorskip("tensorboard")
    import plasticlab

    d = plasticlab.run(None, overrides=tiny + ["engine.loggers=[tensorboard]"], out=tmp_path / "r")
    assert list((d / "tensorboard").glob("events.out.tfevents.*"))
    assert plasticlab.read_metrics(d, "task_end")


def test_task_lines_follow_a_growing_run_once_per_task(tmp_path):
    import io

    from plasticlab.store.loggers import TaskLines

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("tasks: {count: 3}\n")
    metrics = run / "metrics.jsonl"

    def append(*rows, partial: str = ""):
        with metrics.open("a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows) + partial)

    append({"event": "task_end", "task": 0, "step": 10, "train_acc": 0.5})  # finished before: a resumed run
    out = io.StringIO()
    lines = TaskLines(run, file=out)
    lines.total_steps = 30
    append(EPOCH, partial='{"event": "task_end", "task": 1, "st')  # a row being written
    lines.poll()
    assert out.getvalue() == ""
    with metrics.open("a") as f:
        f.write('ep": 20, "train_acc": 0.75, "test_acc": 0.5}\n')
    lines.poll()
    lines.poll()
    assert out.getvalue() == "task 2/3 done  step 20/30  train_acc 0.7500  test_acc 0.5000\n"
    metrics.write_text(metrics.read_text().splitlines(keepends=True)[0])  # a resume cuts back to its checkpoint
    append({"event": "task_end", "task": 2, "step": 30, "train_acc": 1.0})
    lines.poll()
    assert out.getvalue().splitlines()[1:] == ["task 3/3 done  step 30/30  train_acc 1.0000"]
