"""Mitigations, one file each, registered by name. Importing this module registers them all."""

from plasticlab.methods import (  # noqa: F401
    cbp,
    full_reset,
    head_reset,
    l2,
    l2_init,
    redo,
    reset_frozen,
    shrink_perturb,
    spectral,
)
from plasticlab.methods.base import Method, MethodContext, MethodDefaults

__all__ = ["Method", "MethodContext", "MethodDefaults"]
