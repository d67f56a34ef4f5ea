"""plasticlab diagnose: a saved run's checkpoint reproduces its task_end diagnostics."""

import json

import pytest
import torch

import plasticlab
from plasticlab.diagnostics import METRICS
from plasticlab.diagnostics.report import diagnose, format_report
from plasticlab.registry import UserError

CONFIG = {"tasks": {"family": "permuted-pixels", "count": 2},
          "environment": {"kind": "abrupt", "epochs_per_task": 0.5, "compute_matched": False},
          "model": {"name": "mlp", "hidden": [16, 16]}, "diagnostics": {"probe_size": 64},
          "engine": {"device": "cpu"}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return plasticlab.run(CONFIG, out=tmp_path_factory.mktemp("runs") / "r")


def test_checkpoint_reproduces_last_task_end_row(run_dir, tmp_path):
    row = plasticlab.read_metrics(run_dir, "task_end")[-1]
    doc = diagnose(run_dir, device="cpu", out=tmp_path / "d.json")
    assert (doc["task"], doc["step"], doc["probe_size"]) == (1, row["step"], 64)
    for k in (*METRICS, "train_acc", "test_acc"):
        assert doc[k] == row[k], k
    assert doc["param_distance"] > 0  # θ₀ rebuilt from the seed, not from the checkpoint
    assert doc["layers"] == row["layers"]
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["frozen_fraction"] == doc["frozen_fraction"] and saved["layers"] == doc["layers"]
    text = format_report(doc)
    assert "effective_rank" in text and "hidden1" in text


def test_other_task_and_probe_size(run_dir, tmp_path):
    doc = diagnose(run_dir / "checkpoints" / "latest.pt", task=0, device="cpu", out=tmp_path / "d.json",
                   overrides=["diagnostics.probe_size=32", "diagnostics.frozen_tau=10.0"])
    assert (doc["task"], doc["probe_size"]) == (0, 32)
    assert doc["frozen_fraction"] == 1.0  # every weight is below 10 × its init std
    with pytest.raises(UserError, match="--task 5"):
        diagnose(run_dir, task=5, device="cpu", out=tmp_path / "d.json")


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_refuses_unsafe_or_missing_checkpoints(run_dir, tmp_path):
    bad = tmp_path / "checkpoints" / "latest.pt"
    bad.parent.mkdir()
    torch.save({"model": {}, "x": Payload()}, bad)
    (tmp_path / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    with pytest.raises(UserError, match="refusing to unpickle"):
        diagnose(tmp_path, device="cpu")
    with pytest.raises(UserError, match="checkpoint not found"):
        diagnose(tmp_path / "nowhere", device="cpu")
    torch.save({"model": {"w": torch.zeros(1)}}, bad)
    with pytest.raises(UserError, match="does not fit"):
        diagnose(tmp_path, device="cpu")


def test_diagnose_reports_the_optional_task_end_diagnostics_when_asked(run_dir, tmp_path):
    doc = diagnose(run_dir, device="cpu", out=tmp_path / "d.json", overrides=["diagnostics.past_tasks=1",
                                                                             "diagnostics.probe_steps=5",
                                                                             "diagnostics.sharpness=3"])
    assert set(doc["past_task_acc"]) == {"0"} and doc["mean_past_acc"] == doc["past_task_acc"]["0"]
    assert doc["probe_gap"] == pytest.approx(doc["probe_fresh_acc"] - doc["probe_acc"])
    assert doc["sharpness"] is not None
    plain = diagnose(run_dir, device="cpu", out=tmp_path / "p.json")
    assert "past_task_acc" not in plain and "probe_gap" not in plain
