"""Speed knobs of the training step: precision and compilation (``engine.precision``, ``engine.compile``).

* ``precision: bf16`` runs the forward pass and the loss under ``torch.autocast(dtype=bfloat16)``
  (matrix products in bf16 on CPU — AVX-512-BF16/AMX — and GPU). Parameters ("master weights"),
  gradients, optimiser state, the loss (``F.cross_entropy`` on ``out.float()``), method loss
  terms and the device accumulators stay fp32: autocast only casts *copies* of the weights
  for the matmuls, and backward returns fp32 gradients for the fp32 leaves.
* ``compile: true`` compiles the whole step — forward, loss, backward and the Adam update — into
  one graph where the run allows it (``engine/whole_step.py``: Adam/AdamW, no per-step method
  hook). Elsewhere it wraps the step's forward + loss (and, through AOTAutograd, its backward)
  in ``torch.compile``, and method hooks (``extra_loss``, ``add_grad``, ``after_step``) and the
  fused optimiser step run outside the compiled region, exactly as in eager mode.
  Where compiling is unavailable or fails (no C++ compiler, an unsupported platform or op),
  one line says so on stderr and the step runs eagerly.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import torch

BACKEND = "inductor"
"""torch.compile backend. # why: tests swap in "aot_eager" to check tracing without a C++ build."""


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The step's precision context: bf16 autocast on ``device`` or nothing (fp32)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_units(device: torch.device) -> bool:
    """Whether ``device`` has bf16 matrix units (so bf16 autocast can be faster than fp32).

    CUDA: compute capability ≥ 8.0 (Ampere and later). CPU: AVX-512-BF16 or AMX-BF16 in
    ``/proc/cpuinfo``; PyTorch's own capability string as a fallback (AVX2-only CPUs emulate bf16
    matrix products, measured 0.07–0.09× the fp32 loop, docs/performance.md).
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return "AMX" in torch.backends.cpu.get_cpu_capability()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → bf16 where the device has bf16 matrix units, else fp32. An explicit ``bf16`` on a
    device without them is kept (results must not depend on the machine) with a one-line notice."""
    fast = bf16_units(device)
    if precision == "auto":
        return "bf16" if fast else "fp32"
    if precision == "bf16" and not fast:
        notice(f"engine.precision: bf16 on {device.type} without bf16 matrix units is emulated and much slower "
               "than fp32 here (set engine.precision=fp32, or auto)", once=True)
    return precision


_said: set[str] = set()


def notice(message: str, once: bool = False) -> None:
    """One line on stderr (``once``: at most once per process)."""
    if once and message in _said:
        return
    _said.add(message)
    print(f"plasticlab: {message}", file=sys.stderr, flush=True)


def compiled(fn: Callable) -> Callable:
    """``torch.compile(fn)`` as plasticlab compiles: static shapes, ``BACKEND``, guards on module hooks.

    # why: by default dynamo does not guard on nn.Module hooks, so a graph compiled for one run's
    model was reused, in the same process, for a later run's model whose capture hooks it never
    calls (a compiled ReDo run after a compiled plain run trained without ReDo's activations).
    """
    torch._dynamo.config.skip_nnmodule_hook_guards = False
    return torch.compile(fn, dynamic=False, backend=BACKEND)


def maybe_compile(fn: Callable, enabled: bool, what: str = "training step") -> Callable:
    """``torch.compile(fn)`` that falls back to ``fn`` (with a one-line notice) if compiling fails.

    Args:
        fn: the function to compile (called as ``fn(*args)``).
        enabled: when False, ``fn`` itself is returned.
        what: named in the notice.
    """
    if not enabled:
        return fn
    try:
        step = compiled(fn)
    except Exception as e:  # why: torch.compile refuses some platforms/Python builds up front
        notice(f"engine.compile: cannot compile the {what} here ({first_line(e)}); running eagerly")
        return fn
    current = [step]

    def call(*args, **kwargs):
        if current[0] is fn:
            return fn(*args, **kwargs)
        try:
            return current[0](*args, **kwargs)
        except Exception as e:  # why: a backend failure (no C++ compiler, unsupported op) must not stop a run
            current[0] = fn
            notice(f"engine.compile: compiling the {what} failed ({first_line(e)}); running eagerly")
            return fn(*args, **kwargs)

    return call


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:200]
