"""Registries: one dict per kind of component, filled by the ``register`` decorator.

Each subpackage's ``__init__`` imports its modules explicitly, so that file lists everything
registered. Config sections name components by these short, stable keys.
"""

from __future__ import annotations

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


class UserError(Exception):
    """An error the user caused and can fix (bad config, missing data, bad path).

    The CLI prints its message as one line and exits with status 2.
    """
