"""Automatic unit maps: read the layers of hidden units off any ``nn.Module``'s computation graph.

A *unit layer* is found where the graph has the shape

    producer → [norm] → activation module → [pass-through …] → one consumer

* producer: ``nn.Linear`` or ``nn.Conv1d/2d/3d`` (``groups=1``), called once; its output rows /
  channels are the units, its weight rows + bias the incoming side;
* norm (optional): ``LayerNorm``/``RMSNorm`` over the unit axis, ``BatchNorm1d/2d/3d``,
  ``GroupNorm``, or a look-alike (class name ending in ``Norm`` with a per-unit ``weight``, e.g.
  HuggingFace's ``T5LayerNorm``): its per-unit gain/bias/running statistics join the incoming side;
* activation: an instance of ``ACTIVATION_TYPES`` (append your own elementwise class) or of a
  ``transformers.activations`` class, called once;
* pass-through between activation and consumer: ``Identity``, dropout, and for conv units pooling,
  ``flatten(1)`` / ``view(B, -1)`` and a mean over the spatial axes; between producer and
  activation: ``Identity``, dropout, and for conv units pooling (conv → pool → norm → ReLU);
* consumer: the one ``Linear``/``Conv`` that reads the activation; its input columns / channels
  are the outgoing side (``group`` columns per channel after a flatten).

Anything after the consumer (a residual add, another norm) is irrelevant: the consumer is still
the only reader of the activation, so resetting a unit's incoming and outgoing weights resets
exactly that unit. Every other activation module is *skipped* with a one-line reason naming the
layer (read by two layers, read by an add or a slice, input not a Linear/Conv output, grouped
conv, tied weights, module called twice …); a ``Linear``/``Conv`` followed by a functional
activation (``F.relu``) is skipped the same way. The map holds the readable layers; the reasons
explain an empty map (``AutoMap.reason``), and unit methods refuse with them.

Graph capture: ``torch.fx`` symbolic tracing, with producers, norms, activations and the
``torch.nn`` built-ins as leaves. Where that fails (Python control flow on tensor values or
shapes, as in HuggingFace models) and an ``example_input`` is given, one eval-mode, no-grad
forward of it is recorded instead: every leaf module call (forward hooks) and every torch
function between them (a ``TorchFunctionMode``), linked by tensor identity. The model's
parameters, buffers and training mode are left as they were.

Init scales: PyTorch's defaults — weights and biases of ``Linear``/``Conv`` ~ U(±1/√fan_in),
norm gains 1 and biases 0, running means 0 and variances 1 (``units.default_init_slices``).
A model initialised otherwise passes ``init``: a dict ``{parameter name: (kind, scale)}``, or
``"measured"`` to read each weight's distribution from the (freshly initialised) model itself
(``measured_init``); a model may carry either as its ``unit_init`` attribute, which the engine's
``units.build(model)`` then uses. A model that defines ``unit_layers()`` is never auto-mapped
(``units.build``).

Prior art: Plasticine hooks any activation module for its metrics (activations only); here each
unit's incoming and outgoing weights are read from the graph as well, so the reset methods and
the frozen-unit diagnostics work on the same models.

Usage::

    amap = discover(model)                  # or discover(model, example_input=x)
    amap.layers                             # list[UnitLayer]
    amap.skipped                            # [(layer, reason), ...]
    amap.head                               # name of the Linear producing the output, or None
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from plasticlab.registry import UserError
from plasticlab.units import Slice, UnitLayer, default_init_slices, norm_slices

ACTIVATION_TYPES: list[type[nn.Module]] = [
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid,
    nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid]
"""Elementwise activation modules (no parameters). Append a class of your own to have it read as
an activation; a module with per-unit parameters (e.g. ``PReLU(num_parameters=n)``) is not one."""

PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.LayerNorm, nn.RMSNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
         nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
         nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

ACT_FUNCTIONS = {"relu", "relu_", "gelu", "tanh", "sigmoid", "silu", "mish", "elu", "selu", "celu", "leaky_relu",
                 "softplus", "hardtanh", "hardswish", "hardsigmoid", "relu6", "softsign", "logsigmoid"}
"""Functional activations: a producer read by one of these is reported as unreadable."""
PASS_FUNCTIONS = {"dropout", "contiguous", "clone", "detach", "to", "float", "type_as"}
"""Elementwise functions that keep every unit's values its own."""
POOL_FUNCTIONS = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
                  "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d"}
"""Pooling functions: per channel for conv units, mixing for Linear units."""
OUTPUT_FUNCTIONS = {"softmax", "log_softmax", "squeeze", "view", "reshape", "flatten"}
OUTPUT_MODULES = (nn.Softmax, nn.LogSoftmax, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Flatten,
                  nn.modules.dropout._DropoutNd)
"""What may follow the head on the way to the output (the head is the Linear before them)."""
SHAPE_QUERIES = {"size", "dim", "shape", "dtype", "device", "ndim", "getattr", "numel"}
"""Calls that look at a tensor without reading its values (not readers of a unit)."""


class UnitMapError(UserError):
    """The model's structure cannot be read into a unit map (one line: which layer and why)."""


@dataclass
class Op:
    """One node of the captured graph."""

    kind: str
    """``input``, ``module``, ``call`` or ``output``."""
    name: str
    """Module path (``module``), normalised function name (``call``), or the input's name."""
    inputs: list[int] = field(default_factory=list)
    """Indices of the ops whose tensors this op reads."""
    module: nn.Module | None = None
    role: str = ""
    """For calls: ``pass``, ``pool``, ``flatten``, ``spatial-mean``, ``act-fn``, ``query`` or "" (other)."""
    dims: tuple[int, ...] = ()
    """For ``spatial-mean``: the reduced axes (negative ones counted from the end)."""


@dataclass
class AutoMap:
    """Result of ``discover``: the readable unit layers and why the other candidates are not."""

    layers: list[UnitLayer]
    skipped: list[tuple[str, str]]
    """(layer, reason) of every activation (or functional activation) that is not a unit layer."""
    head: str | None
    """Path of the ``Linear`` (called once, weights not tied) whose output is the model's output
    (possibly through a softmax, sigmoid, tanh, squeeze, reshape or dropout), or None."""
    how: str
    """``fx``, ``forward`` (recorded forward of an example input) or the capture error."""

    @property
    def reason(self) -> str:
        """Why the map is empty (or partial), one line: the first two reasons, each with its layers."""
        if self.how not in ("fx", "forward"):
            return self.how
        if not self.skipped:
            return "no activation module after a Linear/Conv (is every activation a module such as nn.ReLU()?)"
        by_reason: dict[str, list[str]] = {}
        for n, r in self.skipped:
            by_reason.setdefault(r, []).append(repr(n))
        first = [f"layer{'s' if len(ns) > 1 else ''} {', '.join(ns)}: {r}" for r, ns in by_reason.items()]
        more = f"; and {len(first) - 2} more" if len(first) > 2 else ""
        return "; ".join(first[:2]) + more


# --- graph capture ---------------------------------------------------------------------------------

def is_activation(m: nn.Module) -> bool:
    return isinstance(m, tuple(ACTIVATION_TYPES)) or type(m).__module__.startswith("transformers.activations")


def is_norm(m: nn.Module) -> bool:
    return isinstance(m, NORMS) or (type(m).__name__.endswith("Norm") and isinstance(getattr(m, "weight", None),
                                                                                     torch.Tensor))


def is_leaf(m: nn.Module) -> bool:
    """Modules recorded as one op: producers, norms, activations and the torch.nn built-ins."""
    if isinstance(m, CONTAINERS):
        return False
    return (isinstance(m, PRODUCERS) or is_norm(m) or is_activation(m)
            or type(m).__module__.startswith("torch.nn"))


def _call_name(target: Any) -> str:
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    return name.strip("_") if name.startswith("__") else name


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m)


def capture_fx(model: nn.Module) -> list[Op]:
    """The graph of ``model`` by ``torch.fx`` symbolic tracing (raises when it cannot be traced)."""
    graph = _Tracer().trace(model)
    ops: list[Op] = []
    index: dict[fx.Node, int] = {}
    for node in graph.nodes:
        ins = [index[n] for n in node.all_input_nodes if n in index]
        if node.op == "placeholder":
            op = Op("input", node.name)
        elif node.op == "call_module":
            op = Op("module", node.target, ins, model.get_submodule(node.target))
        elif node.op in ("call_function", "call_method"):
            op = Op("call", _call_name(node.target), ins)
            op.role, op.dims = _fx_role(op.name, node)
        elif node.op == "output":
            op = Op("output", "output", ins)
        else:  # get_attr: a parameter or buffer, not data flow
            continue
        index[node] = len(ops)
        ops.append(op)
    return ops


def _name_role(name: str) -> str:
    """The role a call has by its name alone ("" when its arguments decide)."""
    for role, names in (("query", SHAPE_QUERIES), ("pass", PASS_FUNCTIONS), ("pool", POOL_FUNCTIONS),
                        ("act-fn", ACT_FUNCTIONS)):
        if name in names:
            return role
    return ""


def _fx_role(name: str, node: fx.Node) -> tuple[str, tuple[int, ...]]:
    if _name_role(name):
        return _name_role(name), ()
    args = list(node.args[1:])
    if name == "flatten":
        start = node.kwargs.get("start_dim", args[0] if args else 0)
        end = node.kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
        return ("flatten" if (start, end) == (1, -1) else ""), ()
    if name in ("view", "reshape"):
        shape = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        flat = len(shape) == 2 and ((shape[1] == -1 and isinstance(shape[0], fx.Node))
                                    or (shape[0] == -1 and isinstance(shape[1], int)))
        return ("flatten" if flat else ""), ()
    if name == "mean":
        dims = node.kwargs.get("dim", args[0] if args else None)
        keep = node.kwargs.get("keepdim", args[1] if len(args) > 1 else False)
        dims = (dims,) if isinstance(dims, int) else tuple(dims) if isinstance(dims, (tuple, list)) else ()
        return ("spatial-mean" if dims and not keep and all(isinstance(d, int) for d in dims) else ""), dims
    return "", ()


class _Recorder(TorchFunctionMode):
    """Records the torch calls made outside leaf modules, linked by tensor identity."""

    def __init__(self, ops: list[Op], producer: dict[int, int], keep: list):
        super().__init__()
        self.ops, self.producer, self.keep, self.depth = ops, producer, keep, 0

    def add(self, op: Op, outputs: Any) -> None:
        tensors = [t for t in tree_leaves(outputs) if isinstance(t, torch.Tensor)]
        if op.kind == "call" and not tensors:
            return  # a shape/dtype query: not a reader
        self.ops.append(op)
        for t in tensors:
            self.producer[id(t)] = len(self.ops) - 1
            self.keep.append(t)

    def inputs(self, *values: Any) -> list[int]:
        return [self.producer[id(t)] for t in tree_leaves(values)
                if isinstance(t, torch.Tensor) and id(t) in self.producer]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0:
            op = Op("call", _call_name(func), self.inputs(args, kwargs))
            op.role, op.dims = _forward_role(op.name, args, kwargs, out)
            self.add(op, out)
        return out


def _forward_role(name: str, args: tuple, kwargs: dict, out: Any) -> tuple[str, tuple[int, ...]]:
    if _name_role(name):
        return _name_role(name), ()
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None or not isinstance(out, torch.Tensor) or x.ndim < 2:
        return "", ()
    if name in ("flatten", "view", "reshape") and out.shape == (x.shape[0], math.prod(x.shape[1:])):
        return "flatten", ()
    if name == "mean" and out.shape == x.shape[:2]:
        return "spatial-mean", tuple(range(2, x.ndim))
    return "", ()


def capture_forward(model: nn.Module, example_input: Any) -> list[Op]:
    """The graph of one eval-mode, no-grad forward of ``example_input`` (a tensor or a tuple of
    positional arguments). Parameters, buffers and the training mode are left unchanged."""
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    ops: list[Op] = []
    producer: dict[int, int] = {}
    keep: list = []
    rec = _Recorder(ops, producer, keep)
    for i, t in enumerate(tree_leaves(args)):
        if isinstance(t, torch.Tensor):
            rec.add(Op("input", f"input{i}"), t)
    handles = []

    def pre(_m, _a):
        rec.depth += 1

    def post(m, a, kw, out, name):
        rec.depth -= 1
        if rec.depth == 0:
            rec.add(Op("module", name, rec.inputs(a, kw), m), out)

    def walk(m: nn.Module, prefix: str) -> None:
        if is_leaf(m):
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(lambda mod, a, kw, out, name=prefix: post(mod, a, kw, out, name),
                                                   with_kwargs=True))
            return
        for n, child in m.named_children():
            walk(child, f"{prefix}.{n}" if prefix else n)

    walk(model, "")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), rec:
            out = model(*args)
    finally:
        for m, mode in modes:
            m.training = mode
        for h in handles:
            h.remove()
    ops.append(Op("output", "output", rec.inputs(out)))
    return ops


_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model → (module ids, ops or capture error): one capture per model structure."""


def capture(model: nn.Module, example_input: Any = None) -> tuple[list[Op] | None, str]:
    """(ops, how): fx first, then a recorded forward of ``example_input``; ops None on failure."""
    key = tuple(id(m) for m in model.modules())
    hit = _GRAPHS.get(model)
    if hit is not None and hit[0] == key and (hit[1] is not None or example_input is None):
        return hit[1], hit[2]
    try:
        ops, how = capture_fx(model), "fx"
    except Exception as e:  # noqa: BLE001 — any tracing failure means: try the recorded forward
        fx_error = f"torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        if example_input is None:
            ops, how = None, f"{fx_error}; pass an example input to record a forward instead"
        else:
            try:
                ops, how = capture_forward(model, example_input), "forward"
            except Exception as e2:  # noqa: BLE001
                ops, how = None, (f"{fx_error}, and a forward of the example input failed "
                                  f"({type(e2).__name__}: {str(e2).splitlines()[0][:120]})")
    _GRAPHS[model] = (key, ops, how)
    return ops, how


# --- analysis --------------------------------------------------------------------------------------

class _Skip(Exception):
    pass


def discover(model: nn.Module, example_input: Any = None, *,
             init: Mapping[str, tuple[str, float]] | str | None = None) -> AutoMap:
    """The automatic unit map of ``model`` (module docstring).

    Args:
        model: any module; a ``unit_layers()`` method of its own is ignored here (``units.build``
            prefers it).
        example_input: a tensor (or tuple of forward arguments) used when ``torch.fx`` cannot
            trace the model.
        init: ``"default"`` (PyTorch's init), ``"measured"`` (``measured_init(model)``) or
            ``{parameter name: (kind, scale)}`` overriding the init of those parameters; None =
            the model's ``unit_init`` attribute where it has one (so ``units.build`` and the engine
            see it), else ``"default"``.
    """
    if init is None:
        init = getattr(model, "unit_init", "default")
    ops, how = capture(model, example_input)
    if ops is None:
        return AutoMap([], [], None, how)
    if isinstance(init, str) and init not in ("default", "measured"):
        raise UserError(f"unit map: init={init!r}: use 'default', 'measured' or a dict {{parameter: (kind, scale)}}")
    overrides = measured_init(model) if init == "measured" else {} if init == "default" else dict(init)
    for name, value in overrides.items():
        if not (isinstance(value, tuple) and len(value) == 2 and value[0] in ("uniform", "normal", "zeros", "ones")
                and isinstance(value[1], (int, float)) and value[1] >= 0):
            raise UserError(f"unit map: init override {name!r}: {value!r} is not (kind, scale) with kind uniform, "
                            "normal, zeros or ones and scale ≥ 0")
    return _Analysis(model, ops, overrides).run(how)


class _Analysis:
    def __init__(self, model: nn.Module, ops: list[Op], overrides: dict[str, tuple[str, float]]):
        self.model, self.ops = model, ops
        self.users: list[list[int]] = [[] for _ in ops]
        for i, op in enumerate(ops):
            for j in dict.fromkeys(op.inputs):
                self.users[j].append(i)
        self.calls: dict[int, int] = {}
        for op in ops:
            if op.module is not None:
                self.calls[id(op.module)] = self.calls.get(id(op.module), 0) + 1
        names: dict[int, list[str]] = {}
        for n, p in model.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), []).append(n)
        self.names = names
        for n in overrides:
            if not any(n in ns for ns in names.values()):
                raise UserError(f"unit map: init override {n!r} is not a parameter of {type(model).__name__}")
        self.overrides = overrides

    def readers(self, i: int) -> list[int]:
        return [u for u in self.users[i] if self.ops[u].role != "query"]

    def run(self, how: str) -> AutoMap:
        layers, skipped = [], []
        for i, op in enumerate(self.ops):
            is_act = op.kind == "module" and is_activation(op.module)
            is_fn = op.kind == "call" and op.role == "act-fn"
            if not (is_act or is_fn):
                continue
            try:
                layer = self.layer(i) if is_act else self.functional(i)
            except _Skip as e:
                skipped.append((self.layer_name(i), str(e)))
                continue
            if layer is not None:
                layers.append(layer)
        return AutoMap(layers, list(dict.fromkeys(skipped)), self.head(), how)

    def layer_name(self, act: int) -> str:
        """The producer's path where there is one, else the activation's."""
        if len(self.ops[act].inputs) == 1:
            j = self.walk_back(act)[0]
            if self.ops[j].kind == "module" and isinstance(self.ops[j].module, PRODUCERS):
                return self.ops[j].name
        return self.ops[act].name

    def describe(self, i: int) -> str:
        op = self.ops[i]
        if op.kind == "module":
            return f"module {op.name!r} ({type(op.module).__name__})"
        return "the model's output" if op.kind == "output" else f"{op.kind} {op.name!r}"

    def is_pool(self, op: Op) -> bool:
        return op.role == "pool" or isinstance(op.module, POOLS)

    def skip_through(self, i: int) -> tuple[int, bool]:
        """Back from op i past Identity/dropout/pooling ops: (the op reached, whether it pooled)."""
        op, pooled = self.ops[i], False
        while len(op.inputs) == 1 and (op.role == "pass" or self.is_pool(op) or isinstance(
                op.module, (nn.Identity, nn.modules.dropout._DropoutNd))):
            pooled |= self.is_pool(op)
            i = op.inputs[0]
            op = self.ops[i]
        return i, pooled

    def walk_back(self, act: int) -> tuple[int, int | None, bool]:
        """From activation op ``act`` back to (the op feeding it through at most a norm, that norm
        op or None, whether a pooling op was passed)."""
        j, pooled = self.skip_through(self.ops[act].inputs[0])
        norm = None
        if self.ops[j].kind == "module" and is_norm(self.ops[j].module) and len(self.ops[j].inputs) == 1:
            norm, (j, more) = j, self.skip_through(self.ops[j].inputs[0])
            pooled |= more
        return j, norm, pooled

    def chain(self, act: int) -> tuple[int, int | None]:
        """(producer op, norm op or None) feeding activation op ``act``."""
        if len(self.ops[act].inputs) != 1:
            raise _Skip(f"the activation reads {len(self.ops[act].inputs)} tensors")
        j, norm, pooled = self.walk_back(act)
        if not (self.ops[j].kind == "module" and isinstance(self.ops[j].module, PRODUCERS)):
            raise _Skip(f"the activation's input is {self.describe(j)}, not a Linear/Conv output "
                        "(optionally through a norm)")
        if pooled and isinstance(self.ops[j].module, nn.Linear):
            raise _Skip(f"pooling between {self.describe(j)} and the activation mixes its units")
        return j, norm

    def functional(self, i: int) -> None:
        try:
            prod, _ = self.chain(i)
        except _Skip:
            return None  # a functional activation on something else (e.g. attention) is not a unit candidate
        raise _Skip(f"its output goes through the function {self.ops[i].name}(), not an activation module; "
                    f"use a module (e.g. nn.ReLU()) or define unit_layers() ({self.describe(prod)})")

    def check_module(self, i: int, what: str) -> None:
        m = self.ops[i].module
        if self.calls[id(m)] > 1:
            raise _Skip(f"{what} {self.ops[i].name!r} is called {self.calls[id(m)]} times (shared by several "
                        "layers); give each layer its own module")
        if getattr(m, "groups", 1) != 1 and isinstance(m, PRODUCERS):
            raise _Skip(f"{what} {self.ops[i].name!r} is a grouped convolution (groups={m.groups})")
        for _, p in m.named_parameters(recurse=False):
            if len(self.names[id(p)]) > 1:
                raise _Skip(f"{what} {self.ops[i].name!r} has weights tied to {self.names[id(p)][1]!r}")

    def layer(self, act: int) -> UnitLayer:
        prod, norm = self.chain(act)
        self.check_module(act, "activation")
        self.check_module(prod, "layer")
        i = self.ops[act].inputs[0]
        while True:  # every op from the producer to the activation has one reader: the next one
            extra = self.readers(i)[1:]
            if extra:
                raise _Skip(f"the output of {self.ops[i].name!r} is also read by {self.describe(extra[0])}")
            if i == prod:
                break
            i = self.ops[i].inputs[0]
        p = self.ops[prod].module
        conv = not isinstance(p, nn.Linear)
        count = p.weight.shape[0]
        if norm is not None:
            self.check_norm(self.ops[norm], count, conv)
        consumer, group = self.consumer(act, conv, count)
        c = self.ops[consumer].module
        self.check_module(consumer, "layer")
        incoming = self.slices(p, 0) + norm_slices(self.ops[norm].module if norm is not None else None)
        outgoing = [dataclasses.replace(s, group=group) for s in self.slices(c, 1)]
        return UnitLayer(self.ops[prod].name, count, incoming, outgoing, self.ops[act].module,
                         act_dim=1 if conv else -1)

    def check_norm(self, op: Op, count: int, conv: bool) -> None:
        m = op.module
        shape = getattr(m, "normalized_shape", None)
        if shape is not None and tuple(shape) != (count,):
            raise _Skip(f"norm {op.name!r} normalises over {tuple(shape)}, not the {count} units")
        if shape is not None and conv:
            raise _Skip(f"norm {op.name!r} normalises the last axis of a conv output, not its channels")
        for name in ("weight", "bias"):
            t = getattr(m, name, None)
            if isinstance(t, torch.Tensor) and tuple(t.shape) != (count,):
                raise _Skip(f"norm {op.name!r} has a {name} of shape {tuple(t.shape)}, not ({count},)")

    def consumer(self, act: int, conv: bool, count: int) -> tuple[int, int]:
        """(the one consumer op, columns per unit) of activation op ``act``."""
        found, flat, frontier = [], False, [act]
        while frontier:
            i = frontier.pop()
            for u in self.readers(i):
                op = self.ops[u]
                m = op.module
                if op.kind == "module" and isinstance(m, PRODUCERS):
                    found.append(u)
                elif (op.role == "pass" or isinstance(m, (nn.Identity, nn.modules.dropout._DropoutNd))
                      or (conv and not flat and self.is_pool(op))):
                    frontier.append(u)
                elif conv and not flat and (op.role == "flatten" or (isinstance(m, nn.Flatten) and
                                                                     (m.start_dim, m.end_dim) == (1, -1))):
                    flat = True
                    frontier.append(u)
                elif conv and not flat and op.role == "spatial-mean" and self.spatial(op.dims):
                    flat = True
                    frontier.append(u)
                else:
                    raise _Skip(f"the activation is read by {self.describe(u)}, not a Linear/Conv "
                                "(unit methods need every reader's weights)")
        if not found:
            raise _Skip("the activation is not read by any Linear/Conv")
        if len(found) > 1:
            names = ", ".join(repr(self.ops[u].name) for u in found[:3])
            raise _Skip(f"the activation is read by {len(found)} layers ({names}); a unit needs one consumer")
        u = found[0]
        c = self.ops[u].module
        if isinstance(c, nn.Linear):
            if conv and not flat:
                raise _Skip(f"conv units reach Linear {self.ops[u].name!r} without a flatten")
            if c.in_features % count:
                raise _Skip(f"Linear {self.ops[u].name!r} reads {c.in_features} inputs, "
                            f"not a multiple of {count} units")
            return u, c.in_features // count
        if not conv or flat or c.in_channels != count:
            raise _Skip(f"conv {self.ops[u].name!r} does not read the {count} units as its input channels")
        return u, 1

    def spatial(self, dims: tuple[int, ...]) -> bool:
        """A mean over axes ≥ 2 only (both in (B, C, …) and counted from the end)."""
        return all(d >= 2 or d < 0 for d in dims)

    def slices(self, m: nn.Module, dim: int) -> list[Slice]:
        fan_in = m.weight[0].numel()
        out = default_init_slices(m.weight, m.bias, fan_in, dim)
        for s in out:
            name = next((n for n in self.names[id(s.tensor)] if n in self.overrides), None)
            if name is not None:
                s.init, s.scale = self.overrides[name]
        return out

    def head(self) -> str | None:
        out = next((op for op in reversed(self.ops) if op.kind == "output"), None)
        if out is None or len(out.inputs) != 1:
            return None
        op = self.ops[out.inputs[0]]
        while len(op.inputs) == 1 and len(self.readers(op.inputs[0])) == 1 and (
                op.role in ("pass", "flatten", "act-fn") or op.name in OUTPUT_FUNCTIONS
                or isinstance(op.module, OUTPUT_MODULES)):
            op = self.ops[op.inputs[0]]
        if (op.kind == "module" and isinstance(op.module, nn.Linear) and self.calls[id(op.module)] == 1
                and all(len(self.names[id(p)]) == 1 for p in op.module.parameters())):
            return op.name
        return None


def measured_init(model: nn.Module, min_entries: int = 64) -> dict[str, tuple[str, float]]:
    """``{parameter name: (kind, scale)}`` read from the current values of every Linear/Conv
    weight and bias — call it on a freshly initialised model.

    All zeros → ``zeros``; all ones → ``ones``; otherwise, for tensors of at least ``min_entries``
    entries (smaller ones keep the default), the excess kurtosis tells uniform (−1.2) from normal
    (0): below −0.6 → ``uniform`` with bound √3·std, else ``normal`` with the std.
    """
    out: dict[str, tuple[str, float]] = {}
    for name, m in model.named_modules():
        if not isinstance(m, PRODUCERS):
            continue
        for pname, p in m.named_parameters(recurse=False):
            t = p.detach().double().flatten()
            key = f"{name}.{pname}" if name else pname
            if bool((t == 0).all()):
                out[key] = ("zeros", 0.0)
            elif bool((t == 1).all()):
                out[key] = ("ones", 0.0)
            elif t.numel() >= min_entries:
                std = t.std().item()
                kurt = (((t - t.mean()) / std) ** 4).mean().item() - 3.0
                out[key] = ("uniform", math.sqrt(3.0) * std) if kurt < -0.6 else ("normal", std)
    return out


def partial_map_note(model: nn.Module, example_input: Any = None) -> str | None:
    """One line saying which activations the automatic map of ``model`` left out and why, or None
    (the model has its own ``unit_layers()``, or every activation was read)."""
    if callable(getattr(model, "unit_layers", None)):
        return None
    amap = discover(model, example_input)
    if not amap.skipped or amap.how not in ("fx", "forward"):
        return None
    return (f"unit map of {type(model).__name__}: {len(amap.layers)} layer(s) of units read automatically; "
            f"not read — {amap.reason} (docs/models.md, Automatic unit maps)")


# --- head and features ------------------------------------------------------------------------------

def head_module(model: nn.Module, example_input: Any = None) -> nn.Linear | None:
    """The ``Linear`` whose output is ``model``'s output (auto map), or None."""
    amap = discover(model, example_input)
    return model.get_submodule(amap.head) if amap.head is not None else None


def head_slices(model: nn.Module, example_input: Any = None) -> list[Slice] | None:
    """``model.head_slices()`` where defined, else the auto head's weight and bias with PyTorch's
    default init (U(±1/√fan_in)); None when there is neither."""
    fn = getattr(model, "head_slices", None)
    if callable(fn):
        return fn()
    head = head_module(model, example_input)
    if head is None:
        return None
    return default_init_slices(head.weight, head.bias, head.in_features, 0)


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """Penultimate features: ``model.features(x)`` where it is a method (a ``features`` submodule,
    as in torchvision-style models, is not the penultimate layer), else the input of the auto head
    during ``model(x)``; None when there is neither."""
    fn = getattr(model, "features", None)
    if callable(fn) and not isinstance(fn, nn.Module):  # why: torchvision-style models' `features` is the conv trunk
        return fn(x)
    head = head_module(model, x)
    if head is None:
        return None
    got: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, a: got.append(a[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return got[0]
