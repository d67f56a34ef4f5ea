"""engine.compile falls back to eager with one notice; bf16 keeps fp32 master state and lands within seed noise."""

import statistics

import pytest
import torch

import plasticlab
from plasticlab.api import resolve
from plasticlab.engine import accel, loop


def test_compile_unavailable_falls_back_with_one_line(monkeypatch, capsys):
    def refuse(*a, **k):
        raise RuntimeError("Dynamo is not supported on this Python\nmore detail")

    monkeypatch.setattr(torch, "compile", refuse)
    f = accel.maybe_compile(lambda x: x * 2, True)
    assert f(torch.ones(2)).tolist() == [2.0, 2.0]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "running eagerly" in err[0] and "not supported" in err[0]


def test_compile_failing_at_first_call_falls_back_once(monkeypatch, capsys):
    calls = []

    def broken_compile(fn, **kwargs):
        def run(*a):
            calls.append(1)
            raise OSError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    f = accel.maybe_compile(lambda x: x + 1, True, "training step")
    assert [f(torch.zeros(())).item() for _ in range(3)] == [1.0, 1.0, 1.0]
    assert len(calls) == 1  # never retried
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no C++ compiler" in err[0]
    assert accel.maybe_compile(len, False) is len


@pytest.mark.parametrize("method", [[], ["method.name=head-reset"], ["method.name=redo"]],
                         ids=["whole-step", "whole-step-head-reset", "forward-only-redo"])
def test_compiled_run_equals_eager(monkeypatch, tiny, method):
    monkeypatch.setattr(accel, "BACKEND", "aot_eager")  # why: the same tracing as inductor, no C++ build
    eager, compiled = [], []
    loop.run([loop.setup(resolve(None, tiny + method))], [eager.append])
    loop.run([loop.setup(resolve(None, tiny + method + ["engine.compile=true"]))], [compiled.append])
    assert [r["event"] for r in eager] == [r["event"] for r in compiled]
    for a, b in zip(eager, compiled, strict=True):
        if "train_loss" in a:
            assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5 * abs(a["train_loss"])


def test_bf16_keeps_fp32_master_weights_optimizer_state_and_loss(tiny):
    s = loop.setup(resolve(None, tiny + ["engine.precision=bf16"]))
    acc = torch.zeros(3)
    phase = s.schedule.phases[0]
    x, y = s.env.batch(phase, None, s.task(0), loop.batch_indices(s, 0, {}))
    with accel.autocast("bf16", s.device):
        out = s.model(x)
        loss = s.loss_fn(s.model, x, y)[0]
    assert out.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loop.train_step(s, x, y, 0, acc)
    assert acc.dtype == torch.float32
    for p in s.model.parameters():
        assert p.dtype == p.grad.dtype == torch.float32
        assert all(v.dtype == torch.float32 for v in s.optimizer.state[p].values() if v.is_floating_point())


PRECISION_RUN = ["tasks.family=permuted-pixels", "tasks.count=2", "environment.epochs_per_task=4",
                 "model.hidden=[64, 64]", "optim.batch_size=32", "diagnostics.every=never"]
SEEDS = range(4)


def final_measures(tmp_path, precision):
    out = []
    for seed in SEEDS:
        d = plasticlab.run(None, overrides=PRECISION_RUN + [f"seed={seed}", f"engine.precision={precision}"],
                           out=tmp_path / f"{precision}{seed}")
        last = plasticlab.read_metrics(d, "task_end")[-1]
        out.append((last["train_acc"], last["test_acc"]))
    return out


def test_bf16_final_measures_within_seed_noise_of_fp32(tmp_path):
    torch.set_num_threads(1)
    fp32, bf16 = final_measures(tmp_path, "fp32"), final_measures(tmp_path, "bf16")
    for i, name in enumerate(("train_acc", "test_acc")):
        a, b = [m[i] for m in fp32], [m[i] for m in bf16]
        noise = max(statistics.stdev(a), statistics.stdev(b), 0.005)
        assert abs(statistics.mean(a) - statistics.mean(b)) <= 2 * noise, (name, a, b)
        assert min(a) > 0.8 and min(b) > 0.8  # both learn: digits reach > 90% within 4 epochs
