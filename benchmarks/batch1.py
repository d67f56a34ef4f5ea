"""Batch-1 online training: samples/s of the engine against a plain PyTorch loop of the same network.

Online permuted MNIST (Dohare et al. 2024: each example seen once, batch size 1, SGD) is bound
by per-step overhead, not by arithmetic. This measures, in one run and interleaved round by
round (so both loops see the same machine load):

* **engine**: ``plasticlab.engine.loop.run`` on a one-task ``permuted-pixels`` run, batch 1,
  SGD (lr 0.003), diagnostics off; the task-end measures are excluded (timed to the last epoch row);
* **plain**: the loop a user would write — the same ``MLP`` module (same seed), default
  ``torch.optim.SGD``, ``x[idx]`` from a device tensor, ``zero_grad``/``backward``/``step``, no logging.

Data: MNIST-shaped random images (784 inputs, 10 classes; MNIST itself cannot be downloaded
here). Networks: ``small`` 784→100→10 (overhead-bound) and ``dohare`` 784→2000×3→10 (the
paper's). Every figure is the median of ``--rounds`` rounds of ``--steps`` steps, timed in
process CPU time (``time.process_time``; one thread, so CPU time is the time the step costs),
so that other tenants of a shared machine slow neither loop down in the figures.

Usage::

    python benchmarks/batch1.py [--threads 1] [--rounds 5] [--steps 2000] [--nets small,dohare]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from plasticlab.api import resolve
from plasticlab.engine import loop
from plasticlab.models.mlp import MLP

sys.path.insert(0, str(Path(__file__).resolve().parent))
tp = importlib.import_module("throughput")  # why: the sibling benchmark script, importable when run as a script

SPEC = {"name": "random-mnist", "classes": 10, "train": 512, "test": 100, "epochs": 1}
NETS = {"small": [100], "dohare": [2000, 2000, 2000]}
LR = 0.003


class Engine:
    """A one-task batch-1 run of exactly ``steps`` steps; ``round()`` → seconds per step."""

    def __init__(self, hidden: list[int], steps: int):
        tp.register_random(SPEC)
        n = tp.n_train(SPEC)
        cfg = resolve(None, [f"data.name={SPEC['name']}", "tasks.family=permuted-pixels", "tasks.count=1",
                             "optim.name=sgd", f"optim.lr={LR}", "optim.batch_size=1", f"model.hidden={hidden}",
                             "model.norm=none", f"environment.epochs_per_task={steps / n}",
                             "environment.compute_matched=false", "diagnostics.every=never", "seed=0",
                             "engine.threads=0"])
        self.setup = loop.setup(cfg, torch.device("cpu"))
        tp.warm_up([self.setup], 3)

    def round(self) -> float:
        stamps: list[float] = []
        t0 = time.process_time()
        loop.run([self.setup], [lambda r: None], progress=lambda *a: stamps.append(time.process_time()))
        return (stamps[-1] - t0) / self.setup.schedule.total_steps


class Plain:
    """The plain loop on the same module and data shape; ``round()`` → seconds per step."""

    def __init__(self, hidden: list[int], steps: int):
        torch.manual_seed(0)
        self.model = MLP(784, hidden, 10, norm="none")
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        n = tp.n_train(SPEC)
        self.x, self.y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
        self.steps = steps

    def round(self) -> float:
        perm = torch.randperm(self.x.shape[0])
        t0 = time.process_time()
        for i in range(self.steps):
            idx = perm[i % perm.numel()].view(1)
            loss = F.cross_entropy(self.model(self.x[idx]), self.y[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return (time.process_time() - t0) / self.steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--nets", default="small,dohare")
    ap.add_argument("--dohare-steps", type=int, default=200, help="steps per round of the 3×2000 network")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch 1, SGD, {args.threads} thread(s), median of {args.rounds} interleaved rounds "
          f"({args.steps} steps; dohare {args.dohare_steps}), CPU time")
    print(f"{'net':<8} {'engine samples/s':>17} {'plain samples/s':>16} {'engine/plain':>13}")
    for name in args.nets.split(","):
        hidden = NETS[name]
        steps = args.dohare_steps if name == "dohare" else args.steps
        engine, plain = Engine(hidden, steps), Plain(hidden, steps)
        torch.set_num_threads(args.threads)  # the run's setup sets the engine's thread count
        plain.round()
        times: dict[str, list[float]] = {"engine": [], "plain": []}
        for _ in range(args.rounds):
            times["engine"].append(engine.round())
            times["plain"].append(plain.round())
        e, p = (1 / statistics.median(times[k]) for k in ("engine", "plain"))
        print(f"{name:<8} {e:>17.0f} {p:>16.0f} {e / p:>13.2f}")


if __name__ == "__main__":
    main()
