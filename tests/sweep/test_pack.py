"""``run_sweep(..., pack=K)``: packed grid points write the same metrics as separate runs."""

import json

import pytest

import plasticlab
from plasticlab.sweep import run_sweep


def sweep(models):
    return {
        "base": {"tasks": {"family": "random-labels", "count": 2}, "environment": {"epochs_per_task": 2},
                 "optim": {"batch_size": 100}, "diagnostics": {"probe_size": 64}},
        "grid": {"optim.lr": [1e-3, 3e-3], "model": models},
        "seeds": [0, 1],
    }


def rows(root, rid):
    return plasticlab.read_metrics(root / "runs" / rid, "task_end")


@pytest.mark.parametrize("executor", ["local", "process"])
def test_packed_sweep_equals_separate_runs(tmp_path, capsys, executor):
    spec = sweep([{"name": "mlp", "hidden": [32, 32]}, {"name": "cnn", "channels": [4]}])
    packed = run_sweep(spec, out=tmp_path / "p", pack=4, progress=False, executor=executor, workers=2)
    assert "runs separately" in capsys.readouterr().err  # the cnn points cannot be packed
    alone = run_sweep(spec, out=tmp_path / "s", progress=False)
    ids = [json.loads(x)["id"] for x in (packed / "runs.jsonl").read_text().splitlines()]
    assert len(ids) == 8
    n_packed = 0
    for rid in ids:
        a, b = rows(packed, rid), rows(alone, rid)
        assert [r["task"] for r in a] == [r["task"] for r in b] == [0, 1]
        for ra, rb in zip(a, b, strict=True):
            assert ra["train_acc"] == pytest.approx(rb["train_acc"], abs=1e-4)
            assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)
        prov = json.loads((packed / "runs" / rid / "provenance.json").read_text())
        assert prov["status"] == "done"
        n_packed += prov.get("packed", 1) > 1
    assert n_packed == 4
    again = run_sweep(spec, out=tmp_path / "p", pack=4, progress=False)  # finished: nothing to do
    assert again == packed


def test_union_grid_sweep_packs_and_reports(tmp_path):
    from plasticlab.report import make_report

    spec = sweep([{"name": "mlp", "hidden": [16]}])
    spec["grid"] = [{"optim.lr": [1e-3, 3e-3]}, {"environment.kind": ["output-interpolation"]}]
    root = run_sweep(spec, out=tmp_path / "u", pack=3, progress=False)
    points = [json.loads(x)["point"] for x in (root / "runs.jsonl").read_text().splitlines()]
    assert points[:3] == [{"optim.lr": 1e-3}, {"optim.lr": 3e-3}, {"environment.kind": "output-interpolation"}]
    provs = [json.loads(p.read_text()) for p in sorted((root / "runs").glob("*/provenance.json"))]
    assert len(provs) == 6 and {p["status"] for p in provs} == {"done"} and max(p.get("packed", 1) for p in provs) == 3
    md = (make_report(root, portable=True) / "report.md").read_text()
    assert "| — | output-interpolation | 1 | 2 |" in md and "| 0.003 | — | 1 | 2 |" in md
