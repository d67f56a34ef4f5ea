"""Logger sinks: rows become scalars at the right steps; tee and replay."""

from __future__ import annotations

import json
import math
import sys
import types

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
    monkeypatch.setenv("WANDB_MODE", "offline")  # why: a logged-in machine would otherwise go online
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


class FakeWandb:
    """Stands in for the ``wandb`` module: records ``init`` calls; ``fail_online`` makes online starts fail."""

    def __init__(self, fail_online: bool = False):
        self.calls: list[dict] = []
        self.fail_online = fail_online

    def init(self, **kwargs):
        self.calls.append(kwargs)
        if self.fail_online and kwargs.get("mode") == "online":
            raise TimeoutError("init timed out")
        run = types.SimpleNamespace(logged=[], define_metric=lambda *a, **k: None, finish=lambda: None)
        run.log = run.logged.append
        return run


@pytest.fixture
def fake_wandb(monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    for k in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr("plasticlab.store.loggers.wandb_logged_in", lambda: False)
    return fake


def test_wandb_settings_from_environment_and_sweep_folder(tmp_path, fake_wandb, monkeypatch):
    from plasticlab.store.loggers import WandbSink

    run = tmp_path / "lr-sweep" / "runs" / "lr=0.1-s0"
    run.mkdir(parents=True)
    (tmp_path / "lr-sweep" / "sweep.yaml").write_text("grid: {}\n")
    WandbSink(dir=run, name="r")
    call = fake_wandb.calls[-1]
    assert call["project"] == "plasticlab" and call["entity"] is None and call["tags"] is None
    assert call["group"] == "lr-sweep" and call["mode"] == "offline"  # not logged in: offline
    assert call["settings"]["init_timeout"] == WandbSink.INIT_TIMEOUT

    monkeypatch.setenv("WANDB_PROJECT", "plast")
    monkeypatch.setenv("WANDB_ENTITY", "lab")
    monkeypatch.setenv("WANDB_TAGS", "a, b,")
    monkeypatch.setenv("WANDB_RUN_GROUP", "mine")
    WandbSink(dir=run)
    call = fake_wandb.calls[-1]
    assert (call["project"], call["entity"], call["tags"], call["group"]) == ("plast", "lab", ["a", "b"], "mine")
    WandbSink(dir=tmp_path / "alone", project="p", group="g", tags=["t"])
    call = fake_wandb.calls[-1]
    assert (call["project"], call["group"], call["tags"]) == ("p", "g", ["t"])  # arguments win


def test_wandb_mode_online_when_logged_in_and_env_respected(tmp_path, fake_wandb, monkeypatch):
    from plasticlab.store.loggers import WandbSink

    monkeypatch.setattr("plasticlab.store.loggers.wandb_logged_in", lambda: True)
    WandbSink(dir=tmp_path)
    assert fake_wandb.calls[-1]["mode"] == "online"
    assert fake_wandb.calls[-1]["group"] is None  # not inside a sweep
    monkeypatch.setenv("WANDB_MODE", "disabled")
    WandbSink(dir=tmp_path)
    assert fake_wandb.calls[-1]["mode"] == "disabled"


def test_wandb_logged_in_reads_api_key_and_netrc(tmp_path, monkeypatch):
    from plasticlab.store.loggers import wandb_logged_in

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    assert not wandb_logged_in()
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_logged_in()
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_logged_in()


def test_wandb_failed_online_start_falls_back_to_offline(tmp_path, fake_wandb, monkeypatch, capsys):
    from plasticlab.store.loggers import WandbSink

    fake_wandb.fail_online = True
    monkeypatch.setenv("WANDB_MODE", "online")
    sink = WandbSink(dir=tmp_path)
    assert [c["mode"] for c in fake_wandb.calls] == ["online", "offline"] and sink.settings["mode"] == "offline"
    assert "logging offline" in capsys.readouterr().err
    sink(TASK_END)
    assert sink.run.logged and sink.run.logged[0]["task/index"] == 2
