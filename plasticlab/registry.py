"""Registries: one dict per kind of component, filled by the ``register`` decorator.

Each component subpackage's ``__init__`` calls ``import_all``, so adding a method, model or
family is one new file: every module in the package is imported and registers itself. Config
sections name components by these short, stable keys.
"""

from __future__ import annotations

import importlib
import pkgutil

DATASETS: dict[str, object] = {}
FAMILIES: dict[str, type] = {}
ENVIRONMENTS: dict[str, type] = {}
MODELS: dict[str, type] = {}
METHODS: dict[str, type] = {}


def register(table: dict, name: str):
    """Decorator: put ``obj`` into ``table`` under ``name`` (names are unique)."""

    def deco(obj):
        if name in table:
            raise KeyError(f"duplicate {name!r}")
        table[name] = obj
        return obj

    return deco


def import_all(package: str, path: list[str]) -> None:
    """Import every module of ``package`` (whose ``__path__`` is ``path``): each registers itself."""
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        importlib.import_module(f"{package}.{info.name}")


class UserError(Exception):
    """An error the user caused and can fix (bad config, missing data, bad path).

    The CLI prints its message as one line and exits with status 2.
    """


class Interrupted(Exception):
    """A run or sweep stopped by SIGINT/SIGTERM after writing its checkpoints (resumable).

    ``status`` holds each member's result so far (None, or its ``Diverged``); ``signum`` the
    signal. The CLI prints one line and exits 128 + signum (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, step: int, status: list, signum: int | None = None):
        super().__init__(f"stopped at step {step}")
        self.step, self.status, self.signum = step, status, signum

    def __reduce__(self):  # why: it crosses process boundaries (pool workers) with its fields
        return Interrupted, (self.step, self.status, self.signum)
