"""The Ray executor on a local Ray with 2 CPUs (one Ray start for the whole module: it is slow)."""

from __future__ import annotations

import csv
import json

import pytest

from plasticlab.sweep import run_sweep
from plasticlab.sweep.executors import connect
from tests.sweep import sweep_fakes as fakes

ray = pytest.importorskip("ray")

RUNNER = "tests.sweep.sweep_fakes:fake_run"


@pytest.fixture(scope="module")
def local_ray():
    started = connect(None, workers=2)
    assert ray.cluster_resources().get("CPU") == 2
    yield
    if started:
        ray.shutdown()


def statuses(root) -> list[str]:
    with (root / "status.csv").open() as f:
        return [r["status"] for r in csv.DictReader(f)]


def test_ray_runs_tasks_and_retries_a_failed_run(tmp_path, local_ray, capfd):
    spec = {
        "base": {"tasks": {"family": "permuted-pixels", "count": 3}},
        "grid": {"optim.lr": [0.1, 0.01, fakes.FLAKY]},
        "seeds": [0, 1],
    }
    root = run_sweep(spec, executor="ray", out=tmp_path / "sw", runner=RUNNER, max_retries=1, progress=False)
    assert statuses(root) == ["done"] * 6
    entries = [json.loads(x) for x in (root / "runs.jsonl").read_text().splitlines()]
    for e in entries:
        run = root / e["path"]
        assert fakes.task_ends(run) == [0, 1, 2]
        expected = [False, True] if e["point"]["optim.lr"] == fakes.FLAKY else [False]
        assert [c["resume"] for c in fakes.calls(run)] == expected  # Ray retried the flaky run, resuming it
        assert fakes.calls(run)[0]["threads"] == 1
    assert ray.is_initialized()  # the executor leaves a Ray it did not start running
    retried = [line for line in capfd.readouterr().err.splitlines() if "retry 1/1" in line]
    assert len(retried) == 2 and all("resuming from its checkpoint" in line for line in retried)  # said, not silent


def test_ray_real_runs_on_digits(tmp_path, local_ray):
    import torch

    torch.set_num_threads(1)
    spec = {
        "base": {
            "tasks": {"family": "permuted-pixels", "count": 2},
            "environment": {"epochs_per_task": 1, "compute_matched": False},
            "model": {"name": "mlp", "hidden": [16]},
            "diagnostics": {"every": "never"},
        },
        "grid": {"optim.lr": [1.0e-3, 1.0e-2]},
        "seeds": [0, 1],
    }
    root = run_sweep(spec, executor="ray", out=tmp_path / "sw", progress=False)
    assert statuses(root) == ["done"] * 4
    for line in (root / "runs.jsonl").read_text().splitlines():
        rows = [json.loads(x) for x in (root / json.loads(line)["path"] / "metrics.jsonl").read_text().splitlines()]
        ends = [r for r in rows if r["event"] == "task_end"]
        assert [r["task"] for r in ends] == [0, 1] and all(0.0 <= r["train_acc"] <= 1.0 for r in ends)


def test_ray_runs_a_pack_as_one_task(tmp_path, local_ray):
    spec = {
        "base": {"tasks": {"family": "random-labels", "count": 2}, "environment": {"epochs_per_task": 1},
                 "model": {"name": "mlp", "hidden": [16]}, "diagnostics": {"every": "never"}},
        "grid": {"optim.lr": [1.0e-3, 1.0e-2]},
        "seeds": [0, 1],
    }
    root = run_sweep(spec, executor="ray", out=tmp_path / "sw", pack=4, progress=False)
    assert statuses(root) == ["done"] * 4
    for line in (root / "runs.jsonl").read_text().splitlines():
        prov = json.loads((root / json.loads(line)["path"] / "provenance.json").read_text())
        assert prov["packed"] == 4
