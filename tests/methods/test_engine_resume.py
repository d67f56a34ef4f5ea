"""Through the engine: a run with stateful methods, interrupted and resumed, equals an uninterrupted run."""

import pytest
import torch

import plasticlab.api as api
from plasticlab.store.rundir import load_checkpoint, read_metrics

OVERRIDES = [
    "tasks={family: random-labels, count: 3}",
    "environment.epochs_per_task=1",
    "environment.compute_matched=false",
    "model.hidden=[16, 16]",
    "method=[{name: cbp, maturity: 3, replacement_rate: 0.05}, {name: redo, every: 4, tau: 0.3},"
    " {name: spectral, iterations: 1}]",
    "diagnostics.every=never",
    "engine.device=cpu",
    "engine.checkpoint_every=5",
]


class Stop(Exception):
    pass


def test_resume_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    full = api.run(None, overrides=OVERRIDES, out=tmp_path / "full")

    def stop_mid_task_1(step, total, task):
        if task == 1 and step > 30:
            raise Stop

    with pytest.raises(Stop):
        api.run(None, overrides=OVERRIDES, out=tmp_path / "cut", progress=stop_mid_task_1)
    cut = load_checkpoint(tmp_path / "cut")
    assert 23 < cut["step"] < 46 and not cut.get("done")
    assert any(v.abs().sum() > 0 for v in cut["methods"][0]["util"])  # CBP state was saved
    resumed = api.run(None, overrides=OVERRIDES, out=tmp_path / "cut", resume=True)

    assert read_metrics(resumed) == read_metrics(full)
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for ma, mb in zip(a["methods"], b["methods"], strict=True):
        for k in ma:
            assert all(torch.equal(x, y) for x, y in zip(ma[k], mb[k], strict=True)), k
