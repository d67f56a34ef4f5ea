"""Cost of the diagnostics at the default cadence, relative to one task of training.

Times ``plasticlab.diagnostics.measure`` on the Liu & Mou MLP (784→256×4→47, LayerNorm, ReLU)
with a 1024-example probe, against one task of the EMNIST pixel-permutation benchmark
(200 epochs × 117 steps of batch 400 = 23,400 Adam steps), extrapolated from a few hundred
timed steps of a plain Adam loop on random data. Target: ratio ≤ 5%.

Usage::

    python benchmarks/diagnostics_cost.py [--device cpu|cuda] [--steps 300] [--threads 0]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics import measure
from plasticlab.models.mlp import MLP
from plasticlab.tasks.base import classification_loss
from plasticlab.units import build

STEPS_PER_TASK = 200 * 117  # epochs × steps of batch 400 over 47 × 1000 examples


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(model, device, steps: int, batch: int = 400) -> float:
    """Seconds per Adam step (forward, backward, step) on random data."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(steps + 20, batch, 784, device=device)
    y = torch.randint(0, 47, (steps + 20, batch), device=device)
    for i in range(steps + 20):
        if i == 20:  # warm-up done
            sync(device)
            start = time.perf_counter()
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return (time.perf_counter() - start) / steps


def time_measure(model, device, probe: int, cfg: DiagnosticsConfig, repeats: int = 3) -> tuple[float, float]:
    """(first call, best of ``repeats`` later calls) in seconds."""
    units = build(model)
    x = torch.randn(probe, 784, device=device)
    y = torch.randint(0, 47, (probe,), device=device)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        measure(model, units, x, y, classification_loss, cfg)
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=300, help="timed training steps")
    p.add_argument("--probe", type=int, default=1024)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = MLP(784, [256] * 4, 47, norm="layernorm").to(device)

    step = time_training(model, device, args.steps)
    task = step * STEPS_PER_TASK
    print(f"device {device}, threads {torch.get_num_threads()}")
    print(f"training: {step * 1e3:.2f} ms/step → one task ({STEPS_PER_TASK} steps) ≈ {task:.1f} s")
    for name, cfg in (("default (exact Jacobian, 47 outputs)", DiagnosticsConfig()),
                      ("projection, 8 vectors", DiagnosticsConfig(sensitivity="projection")),
                      ("no gradient evidence", DiagnosticsConfig(gradients=False))):
        cold, warm = time_measure(model, device, args.probe, cfg)
        print(f"measure [{name}]: {warm * 1e3:.0f} ms (first call {cold * 1e3:.0f} ms) "
              f"→ {100 * warm / task:.3f}% of a task; every N steps costs ≤5% for N ≥ {warm / (0.05 * step):.0f}")


if __name__ == "__main__":
    main()
