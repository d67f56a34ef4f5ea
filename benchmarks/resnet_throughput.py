"""ResNet-18 (CIFAR shape) training throughput through the engine's ``train_step``, and model FLOP utilisation.

Random tensors (B, 3, 32, 32) with 10 classes go through ``plasticlab.engine.loop.train_step``
(forward, loss, backward, optimiser step; autocast and channels-last as configured), so the
figure is what a real run gets per step without data indexing. Definitions:

    throughput = B · steps / t                          (images/s over the timed steps)
    F_train    = 3 · F_fwd                               (backward ≈ 2 × forward)
    MFU        = F_train · steps / t / peak              (peak: dense tensor-core FLOP/s of the GPU)

F_fwd is counted with ``torch.utils.flop_counter.FlopCounterMode`` on one forward of the batch
(matmuls and convolutions; a multiply-add counts 2 FLOPs). On a CPU only images/s and achieved
GFLOP/s are printed (no peak is known); keep the CPU run short, e.g. ``--width 16 --steps 5``.

Usage::

    python benchmarks/resnet_throughput.py                               # GPU if present
    python benchmarks/resnet_throughput.py --precision bf16 --channels-last --batch 512
    python benchmarks/resnet_throughput.py --device cpu --width 16 --batch 32 --steps 5
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from plasticlab.config import load_config
from plasticlab.data.base import Dataset
from plasticlab.engine.loop import Setup, pick_device, setup, train_step

PEAK_TFLOPS = {  # dense, per GPU: (bf16 tensor core, fp32 without tensor cores)
    "H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5), "L40S": (362.0, 91.6),
    "A10": (125.0, 31.2), "L4": (121.0, 30.3), "V100": (125.0, 15.7), "RTX 4090": (165.0, 82.6),
}


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak FLOP/s for ``precision`` from ``PEAK_TFLOPS`` (None if unknown/CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, fp32) in PEAK_TFLOPS.items():
        if key in name:
            return (bf16 if precision == "bf16" else fp32) * 1e12
    return None


def make_setup(args: argparse.Namespace, device: torch.device) -> Setup:
    cfg = load_config({"data": {"name": "digits"}, "tasks": {"family": "permuted-pixels", "count": 1},
                       "model": {"name": "resnet18", "width": args.width, "norm": args.norm},
                       "optim": {"name": args.optim, "lr": 1e-4, "batch_size": args.batch, "weight_decay": 5e-4},
                       "engine": {"precision": args.precision, "channels_last": args.channels_last}})
    cfg.diagnostics.every = "never"
    n = args.batch
    base = Dataset(torch.zeros(n, 3, 32, 32, device=device), torch.zeros(n, dtype=torch.long, device=device),
                   None, None, 10)
    return setup(cfg, device, base=base)  # the engine's builder, on a placeholder (B, 3, 32, 32) dataset


def forward_flops(s: Setup, x: torch.Tensor) -> int:
    """FLOPs of one forward of batch ``x`` (under the configured autocast)."""
    counter = FlopCounterMode(display=False)
    ctx = (torch.autocast(s.device.type, dtype=torch.bfloat16) if s.cfg.engine.precision == "bf16"
           else torch.autocast(s.device.type, enabled=False))
    with torch.no_grad(), ctx, counter:
        s.model(x)
    return counter.get_total_flops()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch", type=int, default=None, help="images per step (default 256 GPU, 32 CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 GPU, 5 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 GPU, 2 CPU)")
    p.add_argument("--width", type=int, default=64, help="ResNet width w (64 = ResNet-18; narrower for a CPU)")
    p.add_argument("--norm", choices=["batchnorm", "groupnorm"], default="batchnorm")
    p.add_argument("--optim", choices=["sgd", "adam", "adamw"], default="adamw")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's peak for MFU")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    args.batch = args.batch or (256 if gpu else 32)
    steps = args.steps or (50 if gpu else 5)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 2)

    s = make_setup(args, device)
    g = torch.Generator(device=device).manual_seed(0)
    xs = torch.randn(4, args.batch, 3, 32, 32, generator=g, device=device)
    ys = torch.randint(0, 10, (4, args.batch), generator=g, device=device)
    acc = torch.zeros(3, device=device)
    fwd = forward_flops(s, xs[0])
    for i in range(warmup):
        train_step(s, xs[i % 4], ys[i % 4], i, acc)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        train_step(s, xs[i % 4], ys[i % 4], warmup + i, acc)
    sync(device)
    secs = time.perf_counter() - start

    achieved = 3 * fwd * steps / secs
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(device, args.precision)
    n_params = sum(p.numel() for p in s.model.parameters())
    out = {"device": torch.cuda.get_device_name(device) if gpu else "cpu", "threads": torch.get_num_threads(),
           "width": args.width, "params": n_params, "batch": args.batch, "steps": steps,
           "precision": args.precision, "channels_last": args.channels_last, "optim": args.optim,
           "images_per_s": args.batch * steps / secs, "ms_per_step": 1000 * secs / steps,
           "fwd_gflop_per_image": fwd / args.batch / 1e9, "achieved_tflops": achieved / 1e12,
           "mfu": achieved / peak if peak else None}
    if args.json:
        print(json.dumps(out))
        return
    print(f"ResNet-18 (w={args.width}, {n_params / 1e6:.2f} M params) on {out['device']}, batch {args.batch}, "
          f"{args.precision}{', channels_last' if args.channels_last else ''}, {args.optim}, {steps} timed steps")
    print(f"  throughput   {out['images_per_s']:.1f} images/s ({out['ms_per_step']:.1f} ms/step)")
    print(f"  forward      {out['fwd_gflop_per_image']:.3f} GFLOP/image (training ≈ 3×)")
    print(f"  achieved     {out['achieved_tflops'] * 1e3:.1f} GFLOP/s")
    mfu = ("n/a (no known peak for this device; pass --peak-tflops)" if peak is None
           else f"{100 * out['mfu']:.1f}% of {peak / 1e12:.0f} TFLOP/s")
    print(f"  MFU          {mfu}")


if __name__ == "__main__":
    main()
