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


def notice(message: str) -> None:
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
