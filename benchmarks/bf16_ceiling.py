"""How fast can a bf16 step of the Liu & Mou EMNIST MLP be on this machine? A ceiling, not plasticlab.

Times, at batch 400 (MLP 784→256×4→47, LayerNorm, Adam), with the same thread count:

* the plain fp32 PyTorch loop (``throughput.PlainLoop``, the issue-10 baseline);
* the isolated matrix products of one step (forward, input and weight gradients) in fp32 and bf16;
* the engine's compiled bf16 step (the step strategy ``loop.run`` chooses with ``engine.compile``:
  the whole step as one graph, ``engine/whole_step.py``);
* one hand-written bf16 step compiled as a single graph: batch gather, forward, backward
  (``torch.func.grad``) and the Adam update, with no autograd engine, no optimiser object, no
  accumulators, no method hooks — the lower bound of what framework overhead allows.

Rounds cycle through every row (load from other processes hits all rows alike); each row
reports its best round.

Usage::

    python benchmarks/bf16_ceiling.py [--threads N]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from plasticlab.engine import loop

sys.path.insert(0, str(Path(__file__).resolve().parent))
tp = importlib.import_module("throughput")  # why: the sibling benchmark script

DIMS = [784, 256, 256, 256, 256, 47]


def ms_per_call(fn, steps: int = 50) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps * 1e3


def matmuls(dtype: torch.dtype, batch: int = 400):
    xs = [torch.randn(batch, d, dtype=dtype) for d in DIMS]
    ws = [torch.randn(DIMS[i + 1], DIMS[i], dtype=dtype) for i in range(5)]

    def run():
        for i in range(5):
            F.linear(xs[i], ws[i])  # forward
            torch.mm(xs[i + 1].t(), xs[i])  # weight gradient
            if i:
                torch.mm(xs[i + 1], ws[i])  # input gradient (none for the first layer)

    return run


def engine_steps(s: loop.Setup):
    """One step per call of ``s``'s first task on its own batches, through the run's step strategy."""
    task, acc, cache, phase = s.task(0), torch.zeros(1, 3, device=s.device), {}, s.schedule.phases[0]
    step_fn = loop.choose_step([s])
    it = iter(range(10**9))

    def one():
        step = next(it)
        step_fn([loop.batch(s, phase, None, task, step, cache)], step, acc)

    for _ in range(3):  # optimiser state, compilation
        one()
    return one


def single_graph_step(batch: int = 400, n: int = 47000):
    g = torch.Generator().manual_seed(0)
    data, labels = torch.randn(n, 784, generator=g), torch.randint(0, 47, (n,), generator=g)
    p = {}
    for i in range(5):
        p[f"w{i}"] = torch.randn(DIMS[i + 1], DIMS[i], generator=g) * DIMS[i] ** -0.5
        p[f"b{i}"] = torch.zeros(DIMS[i + 1])
        if i < 4:
            p[f"g{i}"], p[f"c{i}"] = torch.ones(DIMS[i + 1]), torch.zeros(DIMS[i + 1])
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v = {k: torch.zeros_like(t) for k, t in p.items()}
    t = torch.zeros(())

    def loss_of(q, x, y):
        h = x
        with torch.autocast("cpu", dtype=torch.bfloat16):
            for i in range(4):
                h = F.relu(F.layer_norm(F.linear(h, q[f"w{i}"], q[f"b{i}"]), (256,), q[f"g{i}"], q[f"c{i}"]))
            out = F.linear(h, q["w4"], q["b4"])
        return F.cross_entropy(out.float(), y)

    grad = torch.func.grad(loss_of)

    def step(idx):
        grads = grad(p, torch.index_select(data, 0, idx), torch.index_select(labels, 0, idx))
        t.add_(1)
        for k in p:
            m[k].lerp_(grads[k], 0.1)
            v[k].mul_(0.999).addcmul_(grads[k], grads[k], value=0.001)
            p[k].sub_(1e-3 / (1 - 0.9**t) * m[k] / (v[k].sqrt() / (1 - 0.999**t).sqrt() + 1e-8))

    compiled = torch.compile(step, dynamic=False)
    batches = [torch.randperm(n, generator=g)[:batch] for _ in range(8)]
    it = iter(range(10**9))
    return lambda: compiled(batches[next(it) % 8])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu, bf16 = torch.device("cpu"), ("engine.precision=bf16",)
    plain = tp.PlainLoop(tp.EMNIST, 400, cpu, steps=50)
    engine = tp.EngineRun(tp.EMNIST, 400, 50, cpu, *bf16, "engine.compile=true").setup
    mm32, mm16 = matmuls(torch.float32), matmuls(torch.bfloat16)
    eng = engine_steps(engine)
    ceiling = single_graph_step()
    rows = {"plain PyTorch loop, fp32": lambda: plain.round()["step"] * 1e3,
            "matrix products only, fp32": lambda: ms_per_call(mm32),
            "matrix products only, bf16": lambda: ms_per_call(mm16),
            "engine step, bf16 compiled": lambda: ms_per_call(eng),
            "hand-written single graph (ceiling)": lambda: ms_per_call(ceiling)}
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(args.rounds):
        for name, measure in rows.items():
            best[name] = min(best[name], measure())
    plain_ms = best["plain PyTorch loop, fp32"]
    print(f"{torch.get_num_threads()} threads, batch 400, EMNIST MLP: ms per step (best of {args.rounds} rounds) "
          "and speed-up over the plain loop")
    for name, ms in best.items():
        print(f"  {name:<40} {ms:7.3f} ms  {plain_ms / ms:5.2f}×")


if __name__ == "__main__":
    main()
