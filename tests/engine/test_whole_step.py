"""engine.compile's whole-step graph: used where the run allows it, equal to the usual step, else not used.

Compiled with the ``aot_eager`` backend (the same tracing as inductor, no C++ build, and no
reordering of arithmetic), so the whole step must match the eager step to rounding.
"""

import pytest
import torch

import plasticlab.api as api
from plasticlab.api import resolve
from plasticlab.engine import accel, loop, whole_step
from plasticlab.store.rundir import read_metrics
from tests.conftest import TINY, run_steps


class Stop(Exception):
    """Raised from a progress callback: a crash at a known point."""


@pytest.fixture(autouse=True)
def aot_eager(monkeypatch):
    monkeypatch.setattr(accel, "BACKEND", "aot_eager")


def train(overrides: list[str], steps: int = 6, monkeypatch=None):
    """A Setup after ``steps`` steps of the real loop on its first task, the accumulator, and how many
    steps the whole graph took."""
    s = loop.setup(resolve(None, TINY + overrides))
    taken = [0]
    inner = whole_step.WholeStep.step

    def counted(self, *a):
        took = inner(self, *a)
        taken[0] += took
        return took

    whole_step.WholeStep.step = counted
    try:
        (state,) = run_steps([s], steps)
    finally:
        whole_step.WholeStep.step = inner
    return s, state["acc"], taken[0]


def assert_same_training(a, b, rel=1e-5):
    """Weights, Adam's moments and step counts, and the accumulators agree within ``rel`` of each
    tensor's largest entry (measured: ≤ 1e-6 in fp32, ≤ 3e-3 in bf16, whose rounding step is 4e-3)."""
    (sa, acc_a, _), (sb, acc_b, _) = a, b
    for p, q in zip(sa.model.parameters(), sb.model.parameters(), strict=True):
        pairs = [(p, q)] + [(sa.optimizer.state[p][k], sb.optimizer.state[q][k]) for k in ("exp_avg", "exp_avg_sq")]
        for u, v in pairs:
            assert (u - v).abs().max() <= rel * u.abs().max()
        assert sa.optimizer.state[p]["step"] == sb.optimizer.state[q]["step"]
    assert torch.allclose(acc_a, acc_b, rtol=1e-6)


@pytest.mark.parametrize("opts", [[], ["optim.name=adamw", "optim.weight_decay=0.05"], ["optim.weight_decay=0.05"],
                                  ["engine.precision=bf16"]], ids=["adam", "adamw", "adam-l2", "bf16"])
def test_whole_step_trains_like_the_usual_step(opts):
    eager = train(opts)
    compiled = train(opts + ["engine.compile=true"])
    assert compiled[2] == 5  # every step but the first (which builds Adam's state)
    assert_same_training(eager, compiled, rel=1e-2 if "engine.precision=bf16" in opts else 1e-5)
    assert all(p.grad is None for p in compiled[0].model.parameters())  # no stale gradients left


def test_runs_it_cannot_take_use_the_usual_compiled_step(capsys):
    assert train(["engine.compile=true", "method.name=redo"])[2] == 0  # acts after steps
    assert "method redo acts inside every step" in capsys.readouterr().err
    assert train(["engine.compile=true", "method.name=l2"])[2] == 0  # adds to gradients
    assert train(["engine.compile=true", "model.norm=batchnorm"])[2] == 0  # buffers
    assert train(["engine.compile=true", "method.name=head-reset"])[2] == 5  # per-task hook only
    assert train(["engine.compile=true", "method.name=shrink-perturb"])[2] == 5  # at task starts only
    assert train(["engine.compile=true", "method={name: shrink-perturb, when: step}"])[2] == 0
    eager, sgd = train(["optim.name=sgd", "optim.momentum=0.9"]), train(["optim.name=sgd", "optim.momentum=0.9",
                                                                          "engine.compile=true"])
    assert sgd[2] == 0
    for p, q in zip(eager[0].model.parameters(), sgd[0].model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_dropped_optimizer_state_takes_one_usual_step():
    s, acc, _ = train(["engine.compile=true"], steps=3)
    whole = whole_step.WholeStep(s)
    s.optimizer.state.clear()  # as a method resetting the optimiser does
    x, y = loop.batch(s, s.schedule.phases[0], None, s.task(0), 3, {})
    assert not whole.step(x, y, acc)  # no state: the usual step must build it
    loop.train_step(s, x, y, 3, acc)
    assert whole.step(x, y, acc)


def test_compile_failure_falls_back_with_one_line(monkeypatch, capsys):
    real = torch.compile

    def failing_whole_step(fn, **kwargs):
        if getattr(fn, "__name__", "") != "_step":
            return real(fn, **kwargs)

        def run(*a):
            raise OSError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", failing_whole_step)
    eager, compiled = train([]), train(["engine.compile=true"])
    assert compiled[2] == 0
    assert_same_training(eager, compiled)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "whole training step" in err[0] and "no C++ compiler" in err[0]


def test_compiled_run_resumes_exactly(tmp_path):
    sets = TINY + ["engine.compile=true", "engine.checkpoint_every=5", "method.name=head-reset"]
    full = api.run(None, overrides=sets, out=tmp_path / "full")

    def stop_mid_task_1(step, total, task):
        if task == 1 and step > 40:
            raise Stop

    with pytest.raises(Stop):
        api.run(None, overrides=sets, out=tmp_path / "cut", progress=stop_mid_task_1)
    resumed = api.run(None, overrides=sets, out=tmp_path / "cut", resume=True)
    assert read_metrics(resumed) == read_metrics(full)
