"""Dormant, dead and active units from activations captured on the probe batch.

For unit i of a layer with H units, let a_i = mean |h_i(x)| over probe inputs x (and over
spatial positions / tokens for conv and sequence layers). Then (docs/diagnostics.md):

    ReDo score   s_i = a_i / ((1/H) Σ_j a_j)          (Sokar et al. 2023, eq. 1)
    dormant      s_i ≤ τ, evaluated as a_i ≤ τ·mean_j a_j (a layer of all-zero units is dormant)
    dead         h_i(x) = 0 for every probe input and position (max |h_i| = 0)
    active share f_i = share of the probe rows (inputs × positions) with h_i(x) ≠ 0

``active_fraction`` = mean_i f_i, i.e. the share of (unit, probe row) activations that are
non-zero (Plasticine's "fraction of active units" for ReLU features, 1 − share of zeros). A dead
unit has f_i = 0; a live unit that fires on 10% of the inputs has f_i = 0.1.

Usage::

    with capture(layers) as stats:        # forward hooks, removed on exit
        model(x)
    dormant_fraction(stats[0].mean_abs(), tau=0.1)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from plasticlab.units import UnitLayer


@dataclass
class ActivationStats:
    """Running per-unit sums of one layer's activations (device tensors)."""

    sum_abs: torch.Tensor | None = None  # (units,)
    max_abs: torch.Tensor | None = None  # (units,)
    nonzero: torch.Tensor | None = None  # (units,) rows with h ≠ 0
    count: int = 0
    """Number of (example, position) rows seen."""

    def add(self, h: torch.Tensor, act_dim: int) -> None:
        a = h.detach().abs().movedim(act_dim, -1)
        a = a.reshape(-1, a.shape[-1])  # (rows, units)
        s, m, nz = a.sum(0, dtype=torch.float32), a.amax(0).float(), (a != 0).sum(0)
        self.sum_abs = s if self.sum_abs is None else self.sum_abs + s
        self.max_abs = m if self.max_abs is None else torch.maximum(self.max_abs, m)
        self.nonzero = nz if self.nonzero is None else self.nonzero + nz
        self.count += a.shape[0]

    def mean_abs(self) -> torch.Tensor:
        """a_i = mean |h_i| over all rows seen: (units,)."""
        if self.sum_abs is None:
            raise RuntimeError("no activations were captured (the layer's activation module never ran)")
        return self.sum_abs / self.count

    def active_share(self) -> torch.Tensor:
        """f_i = share of the rows seen where h_i ≠ 0: (units,) float64."""
        if self.nonzero is None:
            raise RuntimeError("no activations were captured (the layer's activation module never ran)")
        return self.nonzero.double() / self.count


@contextmanager
def capture(layers: list[UnitLayer]):
    """Record activation statistics of every unit layer during forwards inside the block.

    Yields a list of ``ActivationStats``, one per layer. Hooks are removed on exit.
    """
    modules = [layer.activation for layer in layers]
    if len({id(m) for m in modules}) != len(modules):
        raise TypeError("unit layers share an activation module; give each layer its own module")
    stats = [ActivationStats() for _ in layers]
    handles = []
    for layer, st in zip(layers, stats, strict=True):
        def hook(_module, _inputs, output, st=st, dim=layer.act_dim):
            st.add(output, dim)
        handles.append(layer.activation.register_forward_hook(hook))
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


def dormant_mask(mean_abs: torch.Tensor, tau: float) -> torch.Tensor:
    """ReDo τ-dormant units: a_i ≤ τ · (1/H) Σ_j a_j. (units,) bool."""
    return mean_abs <= tau * mean_abs.mean()


def dead_mask(max_abs: torch.Tensor) -> torch.Tensor:
    """Units whose activation is exactly zero on every probe input and position. (units,) bool."""
    return max_abs == 0


def dormant_fraction(mean_abs: torch.Tensor, tau: float) -> torch.Tensor:
    """Share of τ-dormant units of one layer (0-d tensor)."""
    return dormant_mask(mean_abs, tau).float().mean()


def dead_fraction(max_abs: torch.Tensor) -> torch.Tensor:
    """Share of dead units of one layer (0-d tensor)."""
    return dead_mask(max_abs).float().mean()


def active_fraction(active_share: torch.Tensor) -> torch.Tensor:
    """Share of non-zero (unit, row) activations of one layer: mean_i f_i (0-d tensor)."""
    return active_share.double().mean()
