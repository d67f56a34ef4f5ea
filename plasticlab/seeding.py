"""Deterministic seeds derived from parts: every random choice is a function of (seed, …)."""

from __future__ import annotations

import hashlib

import torch


def derived_seed(*parts: object) -> int:
    """A 63-bit seed derived from any parts (e.g. ``(seed, "perm", t)``), stable across runs and machines."""
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``derived_seed(*parts)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derived_seed(*parts))
    return g
