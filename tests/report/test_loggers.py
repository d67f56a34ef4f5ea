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
