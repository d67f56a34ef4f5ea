"""Input sensitivity: mean over probe inputs of the Frobenius norm of the input-output Jacobian.

    input_sensitivity = (1/N) Σ_n ‖J(x_n)‖_F,   J(x) = ∂f(x)/∂x   (f = model outputs, logits)

``exact``: J per example with ``torch.func`` (vmap over examples of jacrev), then its norm.
``projection``: for v ~ N(0, I) over the outputs, E_v ‖vᵀJ‖² = ‖J‖²_F, so averaging K
vector-Jacobian products gives an unbiased estimate Ŝ of ‖J‖²_F; we report sqrt(Ŝ), which
is biased low for ‖J‖_F (Jensen). By the delta method the relative bias is about
−Var(Ŝ)/(8‖J‖⁴_F) = −(Σλ²/(Σλ)²)/(4K) for the squared singular values λ of J, so between
−1/(4K) (rank-one J) and −1/(4K·rank J); K = 8 gives at most about −3%.
``auto``: exact when the output has at most ``EXACT_MAX_OUTPUTS`` entries per example.

The projection mode takes the VJPs of a whole batch at once, so the model must treat examples
independently (true for plasticlab models in eval mode; BatchNorm in train mode is not).
For token models, x is the input *embedding* (the model provides ``sensitivity_inputs``), so
the Jacobian is with respect to the embeddings, not the discrete tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch.func import jacrev, vmap

EXACT_MAX_OUTPUTS = 64

Mode = Literal["auto", "exact", "projection"]


def jacobian_sq_norms(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, mode: Mode = "auto",
                      projections: int = 8, generator: torch.Generator | None = None,
                      chunk: int = 128) -> torch.Tensor:
    """Per-example ‖∂fn(x_n)/∂x_n‖²_F, exact or by unbiased random projections.

    Args:
        fn: maps a batch (B, *in) to outputs (B, *out); examples must not interact.
        x: inputs (N, *in).
        mode: ``exact``, ``projection`` or ``auto`` (exact when prod(out) ≤ EXACT_MAX_OUTPUTS).
        projections: K, Gaussian probe vectors per example (projection mode).
        generator: source of the probe vectors (same device as x).
        chunk: examples per vmap/backward call (bounds memory: chunk × prod(out) × prod(in)).

    Returns:
        (N,) float tensor on x's device.
    """
    x = x.detach()
    if mode == "auto":
        with torch.no_grad():
            n_out = math.prod(fn(x[:1]).shape[1:])
        mode = "exact" if n_out <= EXACT_MAX_OUTPUTS else "projection"
    if mode not in ("exact", "projection"):
        raise ValueError(f"unknown sensitivity mode {mode!r}")
    if projections < 1:
        raise ValueError("projections must be ≥ 1")
    out = []
    for i in range(0, x.shape[0], chunk):
        xc = x[i : i + chunk]
        out.append(_exact(fn, xc) if mode == "exact" else _projected(fn, xc, projections, generator))
    return torch.cat(out)


def input_sensitivity(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, **kwargs) -> torch.Tensor:
    """(1/N) Σ_n ‖J(x_n)‖_F as a 0-d tensor (no host sync); kwargs as ``jacobian_sq_norms``."""
    return jacobian_sq_norms(fn, x, **kwargs).sqrt().mean()


def _exact(fn, xc: torch.Tensor) -> torch.Tensor:
    def one(xi):  # one example: (*in) -> (*out)
        return fn(xi.unsqueeze(0)).squeeze(0).float()

    with torch.no_grad():  # why: torch.func transforms ignore an outer no_grad; this only stops param graphs
        jac = vmap(jacrev(one))(xc)  # (b, *out, *in)
    return jac.flatten(1).pow(2).sum(1)


def _projected(fn, xc: torch.Tensor, k: int, generator: torch.Generator | None,
               group: int = 16) -> torch.Tensor:
    xc = xc.clone().requires_grad_(True)
    with torch.enable_grad():
        y = fn(xc).float()  # (b, *out)
    acc = torch.zeros(xc.shape[0], device=xc.device, dtype=torch.float32)
    for j in range(0, k, group):
        m = min(group, k - j)
        v = torch.randn((m, *y.shape), generator=generator, device=y.device, dtype=y.dtype)
        # rows vᵀJ(x_n) for m probe vectors at once: (m, b, *in)
        (g,) = torch.autograd.grad(y, xc, v, retain_graph=j + m < k, is_grads_batched=True)
        acc += g.float().pow(2).flatten(2).sum(2).sum(0)
    return acc / k
