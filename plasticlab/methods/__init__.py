"""Mitigations, one file each, registered by name. Importing this module registers them all."""

from plasticlab.methods.base import Method, MethodContext, MethodDefaults

__all__ = ["Method", "MethodContext", "MethodDefaults"]
