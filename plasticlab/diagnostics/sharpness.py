"""Sharpness: the top eigenvalue of the Hessian of the task loss on the probe batch.

Definition (docs/diagnostics.md, *Sharpness*): with L(θ) the task loss on the probe batch (model
in eval mode) and H = ∇²_θ L over the trainable parameters, power iteration from a fixed start
vector v₀ ~ N(0, I) (generator seeded from ("diagnostics", "sharpness")):

    v_k ← v_k / ‖v_k‖,   λ_k = v_kᵀ H v_k,   v_{k+1} = H v_k,      k = 0 … N − 1
    sharpness = λ_{N−1}    (N = ``diagnostics.sharpness`` Hessian-vector products)

H v is a Hessian-vector product by double backward (``torch.autograd.grad`` of ⟨∇L, v⟩), so no
Hessian is formed and no ``.grad`` is touched. Power iteration converges to the eigenvalue of
largest *magnitude*; that is the top one unless a negative eigenvalue is larger in magnitude
(possible far from a minimum). Source: Cohen et al., "Gradient Descent on Neural Networks
Typically Occurs at the Edge of Stability", ICLR 2021 (sharpness = λ_max of the training-loss
Hessian, by power iteration / Lanczos); Lyle et al., "Understanding Plasticity in Neural
Networks", ICML 2023, relate it to plasticity. Departure: plasticlab uses the probe batch, not
the whole training set, and a fixed number of iterations (no convergence test).

Usage::

    lam = top_hessian_eigenvalue(lambda: loss_fn(model, x, y)[0], params, steps=20)  # 0-d tensor
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from plasticlab.seeding import derived_seed


def top_hessian_eigenvalue(loss: Callable[[], torch.Tensor], params: list[torch.Tensor], steps: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """λ_max of ∇²loss over ``params`` by ``steps`` power iterations (0-d float64 tensor, no host sync).

    Args:
        loss: computes the scalar loss from ``params`` (called once).
        generator: draws v₀; default seeded from ("diagnostics", "sharpness") on the parameters' device.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    device = params[0].device
    if generator is None:
        generator = torch.Generator(device=device)
        generator.manual_seed(derived_seed("diagnostics", "sharpness"))
    grads = torch.autograd.grad(loss(), params, create_graph=True, allow_unused=True)
    used = [(p, g) for p, g in zip(params, grads, strict=True) if g is not None and g.requires_grad]
    if not used:  # the loss is linear in (or independent of) the parameters
        return torch.zeros((), dtype=torch.float64, device=device)
    ps, gs = [p for p, _ in used], [g for _, g in used]
    # why: draw v₀ for every parameter (used or not) so the start vector does not depend on which are used
    drawn = {id(p): torch.randn(p.shape, generator=generator, device=device, dtype=p.dtype) for p in params}
    v = [drawn[id(p)] for p in ps]
    lam = torch.zeros((), dtype=torch.float64, device=device)
    for _ in range(steps):
        norm = torch.sqrt(sum((u.double() ** 2).sum() for u in v)).clamp_min(1e-300)
        v = [(u.double() / norm).to(u.dtype) for u in v]
        hv = torch.autograd.grad(gs, ps, grad_outputs=v, retain_graph=True, allow_unused=True)
        hv = [torch.zeros_like(p) if h is None else h.detach() for p, h in zip(ps, hv, strict=True)]
        lam = sum((u.double() * h.double()).sum() for u, h in zip(v, hv, strict=True))
        v = hv
    return lam
