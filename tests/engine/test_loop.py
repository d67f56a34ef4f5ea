"""Engine: determinism, no host syncs in the step, the default run learns."""

import json

import pytest
import torch

import plasticlab
from plasticlab.api import resolve
from plasticlab.engine import accel, loop
from plasticlab.registry import METHODS
from tests.conftest import run_steps


def metrics_text(d):
    return (d / "metrics.jsonl").read_text()


def test_same_config_and_seed_give_identical_metrics(tmp_path, tiny):
    a = plasticlab.run(None, overrides=tiny, out=tmp_path / "a")
    b = plasticlab.run(None, overrides=tiny, out=tmp_path / "b")
    assert metrics_text(a) == metrics_text(b)
    c = plasticlab.run(None, overrides=tiny + ["seed=1"], out=tmp_path / "c")
    assert metrics_text(a) != metrics_text(c)


def test_rows_follow_the_design(tmp_path, tiny):
    d = plasticlab.run(None, overrides=tiny + ["environment.kind=output-interpolation"], out=tmp_path / "r")
    rows = plasticlab.read_metrics(d)
    epochs = [r for r in rows if r["event"] == "epoch"]
    assert {"task", "epoch", "alpha", "phase", "train_loss", "train_acc", "steps"} <= set(epochs[0])
    assert {r["phase"] for r in epochs} == {"task", "transition"}
    assert all((r["alpha"] is None) == (r["phase"] == "task") for r in epochs)
    ends = [r for r in rows if r["event"] == "task_end"]
    assert [r["task"] for r in ends] == [0, 1, 2]
    assert all(r["test_acc"] is None for r in ends)  # random labels: no test measure
    phases = [r for r in rows if r["event"] == "phase"]
    assert sum(r["steps"] for r in phases) == ends[-1]["step"]
    assert sum(r["steps"] for r in epochs) == ends[-1]["step"]


def test_equal_compute_between_abrupt_and_gradual_from_files(tmp_path, tiny):
    totals = {}
    for kind in ("abrupt", "task-sampling", "output-interpolation"):
        d = plasticlab.run(None, overrides=tiny + [f"environment.kind={kind}", "diagnostics.every=never"],
                           out=tmp_path / kind)
        totals[kind] = sum(r["steps"] for r in plasticlab.read_metrics(d, "phase"))
    assert len(set(totals.values())) == 1


def forbid_syncs(monkeypatch, allowed_ids=frozenset()):
    """Make every host-sync method of Tensor raise (``allowed_ids``: host scalars that may be read)."""
    def forbid(name, orig):
        def f(self, *a, **k):
            if name == "item" and id(self) in allowed_ids:
                return orig(self, *a, **k)
            raise AssertionError(f"host sync: Tensor.{name} inside the training step")

        return f

    for name in ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbid(name, getattr(torch.Tensor, name)))


def step_variants():
    """(id, overrides) of every step variant that must not sync: precisions, compile, each registered
    method with the options under which it acts within a few steps (its declared ``busy``)."""
    out = [("fp32", []), ("bf16", ["engine.precision=bf16"]), ("compiled", ["engine.compile=true"]),
           ("compiled-bf16", ["engine.compile=true", "engine.precision=bf16"])]
    out += [(name, [f"method={json.dumps({'name': name, **cls.busy})}"]) for name, cls in sorted(METHODS.items())]
    return out


def no_sync_steps(monkeypatch, members, steps=4):
    """Real loop, real step strategy: steps 2…``steps`` run with every host sync forbidden (step 1
    builds the optimiser state and compiles). Returns the members' states at the stop."""

    def between(k):
        if k == 1:
            # why: non-fused optimisers keep step counters as host scalars; reading them is no device sync.
            counters = {id(st["step"]) for s in members for st in s.optimizer.state.values() if "step" in st}
            forbid_syncs(monkeypatch, counters)

    try:
        return run_steps(members, steps, between)
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("overrides", [v for _, v in step_variants()], ids=[i for i, _ in step_variants()])
def test_train_step_never_syncs(monkeypatch, tiny, overrides):
    monkeypatch.setattr(accel, "BACKEND", "aot_eager")  # why: traces like inductor, without a C++ build
    s = loop.setup(resolve(None, tiny + ["environment.kind=task-sampling", "environment.epochs_per_task=4",
                                         *overrides]))
    (state,) = no_sync_steps(monkeypatch, [s])
    assert state["acc"][2].item() == 4 * 100


@pytest.mark.parametrize("overrides", [[], ["engine.precision=bf16"], ["method.name=redo", "method.every=1"]],
                         ids=["fp32", "bf16", "capture"])
def test_packed_step_never_syncs(monkeypatch, tiny, overrides):
    members = loop.setup_pack([resolve(None, tiny + [f"seed={k}", *overrides]) for k in range(3)])
    states = no_sync_steps(monkeypatch, members)
    assert [st["acc"][2].item() for st in states] == [400.0] * 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("overrides", [[], ["engine.precision=bf16"]], ids=["fp32", "bf16"])
def test_cuda_steps_never_sync(tiny, overrides):
    cuda = tiny + ["engine.device=cuda", "environment.epochs_per_task=8", *overrides]

    def between(k):
        if k == 2:  # warm-up: lazy optimiser state, first epoch permutations
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")

    for members in ([loop.setup(resolve(None, cuda))], loop.setup_pack([resolve(None, cuda + [f"seed={k}"])
                                                                         for k in range(2)])):
        try:
            states = run_steps(members, 12, between)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert all(st["acc"][2].item() == 12 * 100 for st in states)


def test_saved_states_are_snapshots(tiny):
    """A ``saves`` callback may keep the state in memory: later training must not change it."""
    saved = []
    loop.run([loop.setup(resolve(None, tiny))], [lambda r: None], saves=[saved.append])
    first, last = saved[0]["optimizer"]["state"][0]["exp_avg"], saved[-1]["optimizer"]["state"][0]["exp_avg"]
    assert first.data_ptr() != last.data_ptr() and not torch.equal(first, last)
