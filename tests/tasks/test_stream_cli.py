"""The new streams from the CLI, as a user runs them (generated data / the embedded digits)."""

import json

from tests.test_cli import cli

SCR = ["tasks={family: slowly-changing-regression, count: 3, examples: 300}", "model.hidden=[5]", "model.norm=none",
       "optim.name=sgd", "optim.lr=0.01", "optim.batch_size=1", "environment.epochs_per_task=1",
       "environment.compute_matched=false", "diagnostics.probe_size=64"]
CI = ["tasks={family: class-incremental, count: 3, classes_per_task: 3}", "model.hidden=[32]",
      "optim.batch_size=32", "environment.epochs_per_task=2", "environment.compute_matched=false",
      "diagnostics.probe_size=64"]


def sets(overrides):
    return [x for s in overrides for x in ("--set", s)]


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_slowly_changing_regression_runs_reports_and_diagnoses(tmp_path):
    r = cli("run", *sets(SCR), "--out", str(tmp_path / "scr"))
    assert r.returncode == 0, r.stderr
    got = rows(tmp_path / "scr")
    epochs = [x for x in got if x["event"] == "epoch"]
    assert len(epochs) == 3 and all(x["steps"] == 300 and x["train_acc"] is None for x in epochs)
    ends = [x for x in got if x["event"] == "task_end"]
    assert all(x["test_acc"] is None and x["test_loss"] > 0 for x in ends)
    rep = cli("report", str(tmp_path / "scr"), "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr
    diag = cli("diagnose", str(tmp_path / "scr" / "checkpoints" / "latest.pt"))
    assert diag.returncode == 0, diag.stderr


def test_class_incremental_runs_with_growing_tasks(tmp_path):
    r = cli("run", *sets(CI), "--out", str(tmp_path / "ci"))
    assert r.returncode == 0, r.stderr
    phases = [x for x in rows(tmp_path / "ci") if x["event"] == "phase"]
    assert phases[0]["steps"] < phases[1]["steps"] < phases[2]["steps"]
    dry = cli("run", "--dry-run", *sets(CI))
    assert dry.returncode == 0 and "tasks differ in size" in dry.stdout
    bad = cli("run", *sets(CI), "--set", "environment.kind=input-interpolation", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "kinds that fit: abrupt" in bad.stderr
