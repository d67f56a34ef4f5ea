"""Mitigations, one file each, registered by name. Importing this package registers every module in it."""

from plasticlab.methods.base import Method, MethodContext, MethodDefaults
from plasticlab.registry import import_all

import_all(__name__, __path__)

__all__ = ["Method", "MethodContext", "MethodDefaults"]
