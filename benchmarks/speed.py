"""Speed of plasticlab's training paths in one run: plain loop, engine fp32/bf16/compiled, packed runs.

Two configurations, both on random tensors of the real shapes (``benchmarks/throughput.py``):

* **EMNIST** (Liu & Mou): MLP 784→256×4→47, LayerNorm, Adam, batch 400, permuted pixels;
  a task is 200 epochs × 117 steps = 23,400 steps;
* **random-label MNIST**: the same MLP with 10 outputs, batch 64, 5,120 images; a task is 80
  epochs × 80 steps = 6,400 steps;
* **digits-64**: the default run's real data (1,437 images of 8×8, random labels) with an MLP
  64→64×2→10, batch 64, diagnostics off — a run whose steps are bound by per-step overhead.

Rows: the plain PyTorch loop (fp32), the engine (``loop.run``) in fp32 and bf16, compiled
(``engine.compile``), and packed runs (``engine/packed.py``'s step strategy) of K ∈ {1, 4, 16, 64} members at
batch 64 (each member a different seed). "samples/s" counts every member's samples and
includes the task end (measures and diagnostics at their default cadence, once per task length
above); GFLOP/s = 6 × linear-layer weights × samples/s. Every figure is the best of
``--rounds`` rounds (shared machines). Printed with the fp32 and bf16 matmul rooflines of this
machine and the issue-10 targets.

Usage::

    python benchmarks/speed.py [--threads N] [--rounds 3] [--no-compile] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import torch

from plasticlab.api import resolve
from plasticlab.engine import loop

sys.path.insert(0, str(Path(__file__).resolve().parent))
tp = importlib.import_module("throughput")  # why: the sibling benchmark script, importable when run as a script
EMNIST, MNIST, EngineRun, PlainLoop, sync = tp.EMNIST, tp.MNIST, tp.EngineRun, tp.PlainLoop, tp.sync
best_of, engine_overrides, flops_per_sample, register_random, roofline, HIDDEN = (
    tp.best_of, tp.engine_overrides, tp.flops_per_sample, tp.register_random, tp.roofline, tp.HIDDEN)


DIGITS = {"name": "digits", "classes": 10, "n_train": 1437, "epochs": 10, "mlp": [64, 64]}
"""The built-in default run's data (real digits), with a small MLP: per-step overhead dominates."""
SMALL = ["data.name=digits", "tasks.family=random-labels", "model.hidden=[64, 64]", "diagnostics.every=never"]


class PackedRun:
    """``loop.run`` of K members (seeds 0…K−1) of a one-task run, packed.

    The first round is a whole ``loop.run`` (steps, then every member's task end: measures and
    diagnostics), split by the last epoch row's progress stamp; later rounds time ``steps``
    more calls of the packed step strategy (what the loop calls per step) and reuse the first
    task-end time. # why: K task ends per round would dominate the benchmark's time.
    """

    def __init__(self, spec: dict, batch: int, steps: int, k: int, device: torch.device, *extra: str):
        register_random(spec)
        self.device, self.steps = device, steps
        self.cfgs = [resolve(None, engine_overrides(spec, batch, steps, *extra, f"seed={i}")) for i in range(k)]
        t = time.perf_counter()
        self.members = loop.setup_pack(self.cfgs, device)
        tp.warm_up(self.members, 2)  # optimiser state, the tasks' tensors, compilation
        self.step = loop.choose_step(self.members)
        self.end: float | None = None
        self.warm = time.perf_counter() - t

    def steps_only(self, steps: int) -> float:
        """Seconds per step of ``steps`` calls of the step strategy (with the loop's own batches)."""
        ms = self.members
        phase = ms[0].schedule.phases[0]
        news, caches = [s.task(0) for s in ms], [{} for _ in ms]
        acc = torch.zeros(len(ms), 3, device=self.device)
        sync(self.device)
        t0 = time.perf_counter()
        for step in range(steps):
            self.step([loop.batch(s, phase, None, n, step, c) for s, n, c in zip(ms, news, caches, strict=True)],
                      step, acc)
        sync(self.device)
        return (time.perf_counter() - t0) / steps

    def round(self) -> dict:
        if self.end is None:
            stamps = []
            sync(self.device)
            t0 = time.perf_counter()
            loop.run(self.members, [lambda r: None] * len(self.members),
                     progress=lambda *a: (sync(self.device), stamps.append(time.perf_counter())))
            sync(self.device)
            self.end = time.perf_counter() - stamps[-1]
            return {"step": (stamps[-1] - t0) / self.members[0].schedule.total_steps, "end": self.end}
        return {"step": self.steps_only(self.steps), "end": self.end}


class Roofline:
    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device

    def round(self) -> dict:
        return {"gflops": -roofline(self.dtype, self.device, seconds=0.5)}  # why: best_of keeps minima


def cases(args, device: torch.device) -> list[tuple[str, dict, int, str, object, str | None]]:
    """(config, data spec, batch, row name, case, baseline row) of every row, built (and warmed up)."""
    s400, s64 = args.steps, 3 * args.steps
    emnist, mnist = "EMNIST b400", "RL-MNIST b64"
    rows = [(emnist, EMNIST, 400, "plain loop fp32", PlainLoop(EMNIST, 400, device, steps=s400), None)]
    for prec in ("fp32", "bf16"):
        rows.append((emnist, EMNIST, 400, f"engine {prec}", EngineRun(EMNIST, 400, s400, device,
                                                                      f"engine.precision={prec}"), "plain loop fp32"))
    for prec in [] if args.no_compile else ["fp32", "bf16"]:
        rows.append((emnist, EMNIST, 400, f"engine {prec} compiled",
                     EngineRun(EMNIST, 400, s400, device, f"engine.precision={prec}", "engine.compile=true"),
                     "plain loop fp32"))
    rows.append((mnist, MNIST, 64, "plain loop fp32", PlainLoop(MNIST, 64, device, steps=s64), None))
    rows.append((mnist, MNIST, 64, "engine fp32", EngineRun(MNIST, 64, s64, device), "plain loop fp32"))
    rows.append((mnist, MNIST, 64, "engine bf16", EngineRun(MNIST, 64, s64, device, "engine.precision=bf16"),
                 "plain loop fp32"))
    packs = [int(v) for v in args.packs.split(",") if v]
    for k in packs:
        rows.append((mnist, MNIST, 64, f"packed K={k} fp32", PackedRun(MNIST, 64, max(4, s64 * 4 // max(k, 4)), k,
                                                                     device), "engine fp32"))
    if 16 in packs:
        rows.append((mnist, MNIST, 64, "packed K=16 bf16",
                     PackedRun(MNIST, 64, max(4, s64 // 4), 16, device, "engine.precision=bf16"), "engine fp32"))
    small = "digits-64 b64"
    rows.append((small, DIGITS, 64, "engine fp32", EngineRun(DIGITS, 64, 3 * s64, device, *SMALL), None))
    for k in [k for k in packs if k > 1]:
        rows.append((small, DIGITS, 64, f"packed K={k} fp32", PackedRun(DIGITS, 64, s64, k, device, *SMALL),
                     "engine fp32"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per measurement; the best is reported")
    ap.add_argument("--steps", type=int, default=30, help="steps per round at batch 400 (×3 at batch 64)")
    ap.add_argument("--packs", default="1,4,16,64", help="pack sizes K at batch 64")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled rows (compiling takes ~30 s each)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t_start = time.perf_counter()
    rows = cases(args, device)
    roofs = [Roofline(torch.float32, device), Roofline(torch.bfloat16, device)]
    # why: rounds go over every case in turn, so a burst of load elsewhere hits all rows alike
    best = [{} for _ in rows] + [{} for _ in roofs]
    for _ in range(args.rounds):
        for i, case in enumerate([r[4] for r in rows] + roofs):
            for key, v in case.round().items():
                best[i][key] = min(v, best[i].get(key, v))
    roof32, roof16 = -best[len(rows)]["gflops"], -best[len(rows) + 1]["gflops"]
    print(f"device {device} ({torch.get_num_threads()} threads); matmul roofline fp32 {roof32:.0f} GFLOP/s, "
          f"bf16 {roof16:.0f} GFLOP/s; best of {args.rounds} rounds")
    head = f"{'config':<13} {'run':<22} {'samples/s':>10} {'GFLOP/s':>8} {'fp32 roof':>9} {'× base':>7} {'warm s':>7}"
    print(head)
    print("-" * len(head))
    results: dict[tuple[str, str], float] = {}
    for (config, spec, batch, name, case, base), b in zip(rows, best, strict=False):
        t = b["step"] + b.get("end", 0.0) / tp.steps_per_task(spec, batch)
        sps = len(getattr(case, "cfgs", [None])) * batch / t
        results[(config, name)] = sps
        widths = (64, spec["mlp"]) if "mlp" in spec else (784, HIDDEN)
        gflops = sps * flops_per_sample(widths[0], widths[1], spec["classes"]) / 1e9
        ratio = f"{sps / results[(config, base)]:.2f}" if base else ""
        warm = f"{case.warm:.1f}" if hasattr(case, "warm") else ""
        print(f"{config:<13} {name:<22} {sps:>10.0f} {gflops:>8.1f} {gflops / roof32:>9.0%} {ratio:>7} {warm:>7}")
    print("digits-64: the default run's data (1,437 images of 8×8), MLP 64→64×2→10, diagnostics off: per-step "
          "overhead, not arithmetic, bounds a single run.")
    print("× base: engine rows against the plain loop; packed rows against engine fp32 (= the total samples/s of "
          "K sequential runs).\nsamples/s include the task end (measures + diagnostics) once per task; warm s = "
          f"build + warm-up (+ compile). Total time {time.perf_counter() - t_start:.0f} s.")
    print("targets (issue 10):")
    e = results[("EMNIST b400", "engine fp32")] * flops_per_sample() / 1e9 / roof32
    print(f"  engine fp32 with diagnostics ≥ 75% of the fp32 roofline at batch 400: {e:.0%} "
          f"{'met' if e >= 0.75 else 'NOT met'}")
    plain = results[("EMNIST b400", "plain loop fp32")]
    for name in ("engine bf16", "engine bf16 compiled"):
        if ("EMNIST b400", name) in results:
            r = results[("EMNIST b400", name)] / plain
            print(f"  {name} ≥ 3× the plain fp32 loop at batch 400: {r:.2f}× {'met' if r >= 3 else 'NOT met'}")
    if ("RL-MNIST b64", "packed K=16 fp32") in results:
        single = results[("RL-MNIST b64", "engine fp32")]
        r = results[("RL-MNIST b64", "packed K=16 fp32")] / single
        bound = roof32 / (single * flops_per_sample(784, HIDDEN, MNIST["classes"]) / 1e9)
        print(f"  packed K=16 ≥ 2× 16 sequential runs at batch 64: {r:.2f}× {'met' if r >= 2 else 'NOT met'} "
              f"(the fp32 roofline bounds any pack at {bound:.2f}× the single run)")


if __name__ == "__main__":
    main()
