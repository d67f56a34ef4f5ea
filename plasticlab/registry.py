"""Registries: one dict per kind of component, filled by the ``register`` decorator.

Each component subpackage's ``__init__`` calls ``import_all``, so adding a method, model or
family is one new file: every module in the package is imported and registers itself. Config
sections name components by these short, stable keys.
"""

from __future__ import annotations

import importlib
import pkgutil


class Table(dict):
    """A registry table. Reading it first imports every component package, so it is always complete.

    # why: ``import plasticlab`` imports no component (the CLI's ``--help`` stays free of torch);
    the first read of any table fills them all.
    """

    def __getitem__(self, key):
        load_components()
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        load_components()
        return super().__contains__(key)

    def __iter__(self):
        load_components()
        return super().__iter__()

    def __len__(self) -> int:
        load_components()
        return super().__len__()

    def __or__(self, other):
        load_components()
        return dict(self.items()) | other

    def get(self, key, default=None):
        load_components()
        return super().get(key, default)

    def keys(self):
        load_components()
        return super().keys()

    def values(self):
        load_components()
        return super().values()

    def items(self):
        load_components()
        return super().items()


DATASETS: dict[str, object] = Table()
FAMILIES: dict[str, type] = Table()
ENVIRONMENTS: dict[str, type] = Table()
MODELS: dict[str, type] = Table()
METHODS: dict[str, type] = Table()


def register(table: dict, name: str):
    """Decorator: put ``obj`` into ``table`` under ``name`` (names are unique)."""

    def deco(obj):
        if dict.__contains__(table, name):
            raise KeyError(f"duplicate {name!r}")
        table[name] = obj
        return obj

    return deco


COMPONENT_PACKAGES = ("plasticlab.data", "plasticlab.tasks", "plasticlab.envs", "plasticlab.models",
                      "plasticlab.methods")


_loading: list[bool] = []


def load_components() -> None:
    """Import every component package once, so the registries are full (first read of a table)."""
    if _loading:
        return
    _loading.append(True)  # why: set before importing; the imports read and fill the tables themselves
    for name in COMPONENT_PACKAGES:
        importlib.import_module(name)


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
