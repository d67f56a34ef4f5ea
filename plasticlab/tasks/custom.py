"""``custom`` task family: your own task stream, imported by path or given to the Python API.

Config::

    tasks: {family: custom, factory: "my_pkg.streams:LabelNoise", count: 5, kwargs: {noise: 0.2}}

The stream protocol (docs/custom.md; the user module needs no plasticlab import):

* ``factory(data, **kwargs) -> stream`` is called once per run with the loaded ``data:`` dataset
  (``data.x_train``, ``data.y_train``, ``data.x_test``, ``data.y_test`` as tensors on the run's
  device, ``data.classes``) and ``tasks.kwargs``. A stream that makes its own data ignores it.
* ``stream.task(seed, t)`` returns task t as ``(x_train, y_train, x_test, y_test)`` tensors
  (``x_test``/``y_test`` may be None: test measures are then null). It must be a pure function
  of (seed, t): resume, ``diagnose`` and the forgetting and plasticity-probe diagnostics rebuild
  tasks from it, and the probe asks for unseen indices t ≥ ``count``. Every task has the same
  number of training examples (the engine's epoch length); targets are class ids (N,) int64.
* optional ``stream.n_outputs`` (default ``data.classes``).
* optional ``stream.loss(outputs, targets) -> mean loss`` together with
  ``stream.correct(outputs, targets) -> number of correct examples`` (tensors, no host sync).
  Default: cross-entropy and argmax accuracy (then ``train_acc``/``test_acc`` are accuracies).
* optional ``kinds`` on the factory itself (a class attribute), read before any data is loaded:
  the environment kinds the stream supports. Default ``("abrupt",)``. Gradual kinds need example
  i of every task to come from the same base example (``input-interpolation`` blends x_old[i]
  with x_new[i]; ``output-interpolation`` blends the one-hot targets of task t−1 and t on task
  t's inputs, so it needs class-id targets and the cross-entropy loss; ``task-sampling`` mixes
  examples of both tasks), so a stream declares them only where that holds.

A factory path ``"package.module:attribute"`` is imported when the config is loaded (the module
must be importable there and in sweep workers: installed, on ``PYTHONPATH``, or under the
current directory). The Python API also takes the callable itself (``plasticlab.run(config,
tasks=LabelNoise)``): it is recorded under its import path when importing that path gives the
same object back, else as ``in-process:module:qualname``, which only that Python process can
resolve (resume it from Python, passing the callable again).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds, shown
from plasticlab.registry import UserError
from plasticlab.tasks.base import ClassificationFamily, Task

PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
IN_PROCESS = "in-process:"
GIVEN: dict[str, Callable] = {}
"""Callables given to the Python API in this process, by their recorded label (``in-process:…``)."""
KINDS = ("abrupt", "input-interpolation", "output-interpolation", "task-sampling")


def _fail(key: str, path: str, why: str) -> UserError:
    return UserError(f"config: {key}={path}: {why}")


def import_factory(path: str, key: str, api: str) -> Callable:
    """The callable named by ``"package.module:attribute"`` (or given in-process under that label).

    Args:
        key: the config key, for the error (``model.factory``).
        api: the Python API argument that gives such callables (``plasticlab.run(model=...)``).
    Raises:
        UserError: one line naming ``key``, the cause and the fix.
    """
    if not path:
        raise UserError(f"config: {key}: required: 'package.module:function' (docs/custom.md)")
    if path.startswith(IN_PROCESS):
        if path in GIVEN:
            return GIVEN[path]
        raise _fail(key, path, f"a callable passed to {api} in another Python process cannot be imported; "
                               f"resume it from Python, passing the callable again, or use an importable "
                               "'package.module:function'")
    if not PATH.match(path):
        raise _fail(key, path, "expected 'package.module:function' (a dotted module path, a colon, an attribute)")
    module_name, _, attr = path.partition(":")
    if os.getcwd() not in sys.path:  # why: like `python -m` and uvicorn's "module:app", the current directory counts
        sys.path.append(os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not (module_name == e.name or module_name.startswith(e.name + ".")):
            raise  # why: a missing import *inside* the user's module is the user's traceback to read
        raise _fail(key, path, f"no module named {e.name!r} (install it, put its folder on PYTHONPATH, "
                               "or run from the folder that holds it)") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _fail(key, path, f"module {module_name!r} has no attribute {attr!r} (check the name after ':')")
        obj = getattr(obj, part)
    if not callable(obj):
        raise _fail(key, path, f"{attr!r} is a {type(obj).__name__}, not a function or class")
    return obj


def give(fn: Callable, key: str) -> str:
    """Record ``fn`` given to the Python API; returns the config value naming it.

    That is its import path when importing the path gives ``fn`` back (so the run directory can
    be resumed from the CLI), else ``in-process:module:qualname`` (only this process resolves it).
    """
    if isinstance(fn, nn.Module):
        raise UserError(f"{key}: got a {type(fn).__name__} instance; pass the function or class that builds it "
                        "(it is called again for every fresh network)")
    if not callable(fn):
        raise UserError(f"{key}: expected a function or class, got {shown(fn)}")
    module = getattr(fn, "__module__", None) or "unknown"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    path = f"{module}:{qualname}"
    if module != "__main__" and PATH.match(path):
        try:
            if import_factory(path, key, "") is fn:
                return path
        except (UserError, ImportError):
            pass
    label = f"{IN_PROCESS}{path}"
    GIVEN[label] = fn
    return label


def check_kwargs(kwargs: Any, key: str) -> None:
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise UserError(f"config: {key}: expected a mapping of keyword arguments, got {shown(kwargs)}")


def check_call(fn: Callable, n_args: int, kwargs: dict, section: str, path: str, call: str) -> None:
    """Refuse (one line) a factory that cannot be called as ``call``: ``n_args`` positional
    arguments and ``{section}.kwargs``."""
    try:
        inspect.signature(fn).bind(*[None] * n_args, **kwargs)
    except TypeError as e:
        given = f" with {section}.kwargs={shown(kwargs)}" if kwargs else ""
        raise UserError(f"config: {section}.factory={path}{given}: cannot be called as {call}: {e}") from None
    except ValueError:  # why: some builtins have no signature; calling them will tell
        pass


def _tensor(v: Any, what: str, key: str, path: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise _fail(key, path, f"task(seed, t) returned {type(v).__name__} for {what}; expected a tensor")
    return v


@registry.register(registry.FAMILIES, "custom")
@dataclass
class CustomTasks(ClassificationFamily):
    """Config of the ``custom`` family: the stream ``factory(data, **kwargs)`` (module docstring)."""

    family: str = "custom"
    factory: str = ""
    """``package.module:attribute`` of the stream factory (usually a class)."""
    count: int = field(default=10, metadata=bounds(ge=1))
    """Number of tasks."""
    kwargs: Any = field(default_factory=dict)
    """Keyword arguments of the factory."""

    kinds = ("abrupt",)
    """The environment kinds that fit: the factory's own ``kinds`` attribute, read by ``validate``."""

    def validate(self, key: str) -> None:
        """Import the factory now (a bad path fails before anything is written) and read its kinds."""
        check_kwargs(self.kwargs, f"{key}.kwargs")
        fn = self.function()
        check_call(fn, 1, self.kwargs, "tasks", self.factory, "factory(data, **kwargs)")
        kinds = getattr(fn, "kinds", ("abrupt",))
        if isinstance(kinds, str) or not all(k in KINDS for k in kinds):
            raise _fail("tasks.factory", self.factory, f"kinds={shown(kinds)}: expected a tuple of {', '.join(KINDS)}")
        self.kinds = tuple(kinds)

    def function(self) -> Callable:
        return import_factory(self.factory, "tasks.factory", "plasticlab.run(tasks=...)")

    @property
    def cross_entropy(self) -> bool:
        """The stream keeps the default loss. Before the stream is built only a class factory can say."""
        built = self.__dict__.get("stream_")
        if built is not None:
            return not hasattr(built[1], "loss")
        fn = self.function()
        return inspect.isclass(fn) and not hasattr(fn, "loss")

    def stream(self, base) -> Any:
        """The stream of ``base`` (built once per loaded dataset)."""
        built = self.__dict__.get("stream_")
        if built is not None and built[0] is base:
            return built[1]
        fn = self.function()
        check_call(fn, 1, self.kwargs, "tasks", self.factory, "factory(data, **kwargs)")
        stream = fn(base, **self.kwargs)
        if not callable(getattr(stream, "task", None)):
            raise _fail("tasks.factory", self.factory, f"returned a {type(stream).__name__} without a task(seed, t) "
                        "method (docs/custom.md: the stream protocol)")
        if hasattr(stream, "loss") != hasattr(stream, "correct"):
            raise _fail("tasks.factory", self.factory, "the stream defines one of loss/correct; define both or neither")
        self.stream_ = (base, stream)
        self.__dict__.pop("first_", None)
        return stream

    def make_task(self, base, seed: int, t: int) -> Task:
        stream, key, path = self.stream(base), "tasks.factory", self.factory
        got = stream.task(seed, t)
        if not isinstance(got, (tuple, list)) or len(got) not in (2, 4):
            raise _fail(key, path, f"task(seed, t) returned {type(got).__name__}; expected (x_train, y_train, "
                                   "x_test, y_test) or (x_train, y_train)")
        x, y, xt, yt = (*got, None, None) if len(got) == 2 else got
        device = base.x_train.device
        x, y = _tensor(x, "x_train", key, path).to(device), _tensor(y, "y_train", key, path).to(device)
        if (xt is None) != (yt is None):
            raise _fail(key, path, "task(seed, t) returned only one of x_test, y_test (give both or neither)")
        if xt is not None:
            xt, yt = _tensor(xt, "x_test", key, path).to(device), _tensor(yt, "y_test", key, path).to(device)
        for a, b, split in ((x, y, "train"), (xt, yt, "test")):
            if a is not None and a.shape[0] != b.shape[0]:
                raise _fail(key, path, f"task {t}: x_{split} has {a.shape[0]} examples, y_{split} {b.shape[0]}")
        first = self.__dict__.get("first_")
        if first is not None and x.shape != first:
            raise _fail(key, path, f"task {t}: x_train has shape {tuple(x.shape)}, task 0 {tuple(first)}; every task "
                                   "needs the same number and shape of training examples")
        return Task(t, x, y, xt, yt)

    def first(self, base) -> torch.Size:
        """Shape of task 0's x_train (the engine's epoch length and the model's input shape)."""
        self.stream(base)
        if "first_" not in self.__dict__:
            self.first_ = self.make_task(base, 0, 0).x_train.shape
        return self.first_

    def n_train(self, base) -> int:
        return self.first(base)[0]

    def input_shape(self, base) -> tuple[int, ...]:
        return tuple(self.first(base)[1:])

    def n_outputs(self, base) -> int:
        return int(getattr(self.stream(base), "n_outputs", base.classes))

    def loss(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor):
        """The stream's loss and correct count, else cross-entropy; returns (loss, correct, n), no sync."""
        stream = self.__dict__["stream_"][1]
        if not hasattr(stream, "loss"):
            return super().loss(model, x, target)
        out = model(x)
        return stream.loss(out, target), stream.correct(out, target), x.shape[0]

    @torch.no_grad()
    def measure(self, model: nn.Module, task: Task, batch_size: int) -> dict:
        """Like the classification families; with the stream's own loss, its mean loss and
        correct share over the whole training and test sets. One host sync."""
        if self.cross_entropy:
            return super().measure(model, task, batch_size)
        sets = [(task.x_train, task.y_train)] + ([(task.x_test, task.y_test)] if task.x_test is not None else [])
        sums = []
        for x, y in sets:
            acc = torch.zeros(2, device=x.device, dtype=torch.float64)
            for i in range(0, x.shape[0], batch_size):
                loss, correct, n = self.loss(model, x[i : i + batch_size], y[i : i + batch_size])
                acc += torch.stack([loss.double() * n, torch.as_tensor(correct, device=x.device).double()])
            sums.append(acc / x.shape[0])
        got = torch.stack(sums).tolist()  # SYNC: once per measurement
        out = {"train_loss": got[0][0], "train_acc": got[0][1], "test_loss": None, "test_acc": None}
        if len(got) > 1:
            out.update(test_loss=got[1][0], test_acc=got[1][1])
        return out
