"""Engine: determinism, no host syncs in the step, the default run learns."""

import pytest
import torch

import plasticlab
from plasticlab.api import resolve
from plasticlab.engine import accel, loop, packed
from plasticlab.registry import METHODS


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


STEP_METHOD_OVERRIDES = {"redo": ["method.every=1"], "cbp": ["method.maturity=0"],
                         "shrink-perturb": ["method.when=step"]}
"""Make each method's per-step hooks act within the few steps the no-sync test runs."""


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
    """(id, overrides) of every step variant that must not sync: precisions, compile, each method."""
    out = [("fp32", []), ("bf16", ["engine.precision=bf16"]), ("compiled", ["engine.compile=true"]),
           ("compiled-bf16", ["engine.compile=true", "engine.precision=bf16"])]
    out += [(name, [f"method.name={name}", *STEP_METHOD_OVERRIDES.get(name, [])]) for name in sorted(METHODS)]
    return out


@pytest.mark.parametrize("overrides", [v for _, v in step_variants()], ids=[i for i, _ in step_variants()])
def test_train_step_never_syncs(monkeypatch, tiny, overrides):
    monkeypatch.setattr(accel, "BACKEND", "aot_eager")  # why: traces like inductor, without a C++ build
    s = loop.setup(resolve(None, tiny + ["environment.kind=task-sampling", *overrides]))
    hooks = loop.capture_hooks(s)
    acc = torch.zeros(3)
    phase = next(p for p in s.schedule.phases if p.kind == "transition")
    old, new = s.task(phase.old), s.task(phase.task)
    cache = {}
    loop.train_step(s, *s.env.batch(phase, old, new, loop.batch_indices(s, 0, cache)), 0, acc)  # warm-up, compile
    # why: non-fused optimisers keep step counters as host scalars; reading them is no device sync.
    host_counters = {id(st["step"]) for st in s.optimizer.state.values() if "step" in st}
    forbid_syncs(monkeypatch, host_counters)
    for step in range(1, 4):
        x, y = s.env.batch(phase, old, new, loop.batch_indices(s, step, cache))
        loop.train_step(s, x, y, step, acc)
    monkeypatch.undo()
    for h in hooks:
        h.remove()
    assert acc[2].item() == 4 * 100


@pytest.mark.parametrize("overrides", [[], ["engine.precision=bf16"], ["method.name=redo", "method.every=1"]],
                         ids=["fp32", "bf16", "capture"])
def test_packed_step_never_syncs(monkeypatch, tiny, overrides):
    if overrides and overrides[0] == "method.name=redo" and "redo" not in METHODS:
        pytest.skip("redo is not registered on this branch")
    cfgs = [resolve(None, tiny + [f"seed={k}", *overrides]) for k in range(3)]
    p = packed.setup_pack(cfgs)
    phase = p.members[0].schedule.phases[0]
    news, caches = [s.task(0) for s in p.members], [{} for _ in cfgs]
    acc = torch.zeros(3, 3)
    packed.packed_step(p, *packed.packed_batch(p, phase, [None] * 3, news, 0, caches), 0, acc)
    forbid_syncs(monkeypatch)
    for step in range(1, 4):
        packed.packed_step(p, *packed.packed_batch(p, phase, [None] * 3, news, step, caches), step, acc)
    monkeypatch.undo()
    assert acc[:, 2].tolist() == [400.0] * 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("overrides", [[], ["engine.precision=bf16"]], ids=["fp32", "bf16"])
def test_cuda_steps_never_sync(tiny, overrides):
    cfg = resolve(None, tiny + ["environment.kind=task-sampling", "engine.device=cuda", *overrides])
    s = loop.setup(cfg)
    p = packed.setup_pack([resolve(None, tiny + ["engine.device=cuda", f"seed={k}", *overrides]) for k in range(2)])
    acc, pacc, cache, caches = torch.zeros(3, device="cuda"), torch.zeros(2, 3, device="cuda"), {}, [{}, {}]
    phase = next(q for q in s.schedule.phases if q.kind == "transition")
    old, new = s.task(phase.old), s.task(phase.task)
    news = [m.task(0) for m in p.members]
    pphase = p.members[0].schedule.phases[0]

    def steps(first, last):
        for step in range(first, last):
            loop.train_step(s, *s.env.batch(phase, old, new, loop.batch_indices(s, step, cache)), step, acc)
            packed.packed_step(p, *packed.packed_batch(p, pphase, [None, None], news, step, caches), step, pacc)

    steps(0, 2)  # warm-up: lazy optimiser state, first epoch permutations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        steps(2, 22)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert acc[2].item() == 22 * 100


def test_default_run_first_task_learns(tmp_path):
    d = plasticlab.run(None, overrides=["tasks.count=1", "diagnostics.every=never"], out=tmp_path / "d")
    (first,) = plasticlab.read_metrics(d, "task_end")
    assert first["train_acc"] > 0.9
