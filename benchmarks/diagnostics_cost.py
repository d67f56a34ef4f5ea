"""Cost of the diagnostics at the default cadence, relative to one task of training.

Times ``plasticlab.diagnostics.measure`` on the Liu & Mou MLP (784→256×4→47, LayerNorm, ReLU)
with a 1024-example probe, against one task of the EMNIST pixel-permutation benchmark
(200 epochs × 117 steps of batch 400 = 23,400 Adam steps), extrapolated from a few hundred
timed steps of a plain Adam loop on random data. Target: ratio ≤ 5%. Also times, on their own,
the computations each of the newer diagnostics adds to ``measure`` (param_distance,
feature_norm, active_fraction, grad_sparsity, duplicate_fraction) on the same model and probe.

Usage::

    python benchmarks/diagnostics_cost.py [--device cpu|cuda] [--steps 300] [--threads 0]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics import initial_params, measure
from plasticlab.diagnostics.params import distance, duplicate_mask, zero_fraction
from plasticlab.diagnostics.rank import feature_norm
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


def time_measure(model, device, probe: int, cfg: DiagnosticsConfig, repeats: int = 3,
                 init: dict | None = None) -> tuple[float, float]:
    """(first call, best of ``repeats`` later calls) in seconds."""
    units = build(model)
    x = torch.randn(probe, 784, device=device)
    y = torch.randint(0, 47, (probe,), device=device)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        measure(model, units, x, y, classification_loss, cfg, init=init)
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:])


def best_of(fn, device, repeats: int = 20) -> float:
    """Best of ``repeats`` timed calls of ``fn()`` (after one warm-up), in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def time_new_diagnostics(model, device, probe: int, init: dict, eps: float = 1e-3) -> dict[str, float]:
    """Seconds each newer diagnostic adds to ``measure``: its own computation, given what
    ``measure`` already has (activations, penultimate features, the probe-batch gradient)."""
    units = build(model)
    x = torch.randn(probe, 784, device=device)
    y = torch.randint(0, 47, (probe,), device=device)
    acts: list[torch.Tensor] = []
    handles = [u.activation.register_forward_hook(lambda _m, _i, out: acts.append(out.detach())) for u in units]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    loss = classification_loss(model, x, y)[0]
    for h in handles:
        h.remove()
    grads = list(torch.autograd.grad(loss, params))
    with torch.no_grad():
        phi = model.features(x)
    refs = [init[n] for n, _ in named]
    ref_of = {id(p): init[n] for n, p in named}
    per_layer = [[s.tensor for s in u.incoming if s.is_weight] for u in units]
    layer_refs = [[ref_of[id(t)] for t in ts] for ts in per_layer]

    def param_distance():
        distance(params, refs)
        for ts, rs in zip(per_layer, layer_refs, strict=True):
            distance(ts, rs)

    def active_fraction():  # the per-unit non-zero count the capture hooks add
        for h in acts:
            (h.abs() != 0).sum(0).double().mean()

    return {"param_distance": best_of(param_distance, device),
            "feature_norm": best_of(lambda: feature_norm(phi), device),
            "active_fraction": best_of(active_fraction, device),
            "grad_sparsity": best_of(lambda: zero_fraction(grads), device),
            "duplicate_fraction": best_of(lambda: [duplicate_mask(u, eps) for u in units], device)}


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
    init = initial_params(model)  # θ₀, as setup keeps it

    step = time_training(model, device, args.steps)
    task = step * STEPS_PER_TASK
    print(f"device {device}, threads {torch.get_num_threads()}")
    print(f"training: {step * 1e3:.2f} ms/step → one task ({STEPS_PER_TASK} steps) ≈ {task:.1f} s")
    for name, cfg in (("default (exact Jacobian, 47 outputs)", DiagnosticsConfig()),
                      ("projection, 8 vectors", DiagnosticsConfig(sensitivity="projection")),
                      ("no gradient evidence", DiagnosticsConfig(gradients=False))):
        cold, warm = time_measure(model, device, args.probe, cfg, init=init)
        print(f"measure [{name}]: {warm * 1e3:.0f} ms (first call {cold * 1e3:.0f} ms) "
              f"→ {100 * warm / task:.3f}% of a task; every N steps costs ≤5% for N ≥ {warm / (0.05 * step):.0f}")
    for name, sec in time_new_diagnostics(model, device, args.probe, init).items():
        print(f"  {name:<18} {sec * 1e3:8.3f} ms → {100 * sec / task:.5f}% of a task")


if __name__ == "__main__":
    main()
