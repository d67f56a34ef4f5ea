"""``custom`` model: your own ``nn.Module``, built by a factory imported by path or given to the Python API.

Config::

    model: {name: custom, factory: "my_pkg.nets:make_model", kwargs: {width: 64}}

``factory(input_shape, n_outputs, **kwargs) -> nn.Module`` is called with the input shape of one
example (e.g. ``(1, 8, 8)``) and the number of outputs, under the run's init seed (the global
torch RNG is seeded from (seed, "init") around the call, so ``nn.Linear``'s default init is
reproducible); the module maps a batch (B, *input_shape) to (B, n_outputs). The module needs no
plasticlab import: its unit map (which ReDo, CBP, reset-frozen and the dormant/frozen
diagnostics read) is derived automatically (``plasticlab.unit_discovery``; docs/models.md,
"Automatic unit maps"); a module may still define ``unit_layers()`` itself.

Init scales (the distribution a re-drawn unit's weights come from), ``model.init``:
``default`` — the module's own ``unit_init`` attribute where it sets one, else PyTorch's default
init of ``Linear``/``Conv`` (U(±1/√fan_in), what their ``reset_parameters`` draws);
``measured`` — read from the freshly built module itself (``unit_discovery.measured_init``:
uniform or normal by the kurtosis, with the measured spread), for a module that initialises its
layers otherwise; or a mapping ``{parameter name: [kind, scale]}`` (kind uniform | normal |
zeros | ones) that overrides the named parameters. Either of the last two is stored on the built
module as its ``unit_init`` (measured once, at build, before any training), which the
automatic unit map reads.

The path is imported when the config is loaded (``plasticlab.tasks.custom.import_factory``: the
module must be importable there and in sweep workers). Every build checks the result before
anything is written: a factory that cannot take the arguments, returns something other than an
``nn.Module``, fails on a probe batch of zeros (2, *input_shape) or answers it with a shape
other than (2, n_outputs) is a one-line ``UserError`` naming ``model.factory``. Not packable
(packed sweeps need a batched form of the model): such runs run alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from plasticlab import registry
from plasticlab.config import shown
from plasticlab.registry import UserError
from plasticlab.tasks.custom import check_call, check_kwargs, import_factory
from plasticlab.unit_discovery import measured_init

KEY = "model.factory"
CALL = "factory(input_shape, n_outputs, **kwargs)"
INIT_KINDS = ("uniform", "normal", "zeros", "ones")


@registry.register(registry.MODELS, "custom")
@dataclass
class CustomModel:
    """Config of the ``custom`` model (module docstring)."""

    packable = False

    name: str = "custom"
    factory: str = ""
    """``package.module:attribute`` of ``factory(input_shape, n_outputs, **kwargs) -> nn.Module``."""
    kwargs: Any = field(default_factory=dict)
    """Keyword arguments of the factory."""
    init: Any = "default"
    """Init scales of re-drawn units: default | measured | {parameter: [kind, scale]} (module docstring)."""

    def validate(self, key: str) -> None:
        check_kwargs(self.kwargs, f"{key}.kwargs")  # why: a bad path fails at config load, before anything is written
        check_call(self.function(), 2, self.kwargs, "model", self.factory, CALL)
        if self.init in ("default", "measured"):
            return
        ok = isinstance(self.init, dict) and all(
            isinstance(k, str) and isinstance(v, list) and len(v) == 2 and v[0] in INIT_KINDS
            and isinstance(v[1], (int, float)) and not isinstance(v[1], bool) and math.isfinite(v[1]) and v[1] >= 0
            for k, v in self.init.items())
        if not ok:
            raise UserError(f"config: {key}.init: expected default, measured or {{parameter: [kind, scale]}} with kind "
                            f"one of {', '.join(INIT_KINDS)} and scale ≥ 0, got {shown(self.init)}")

    def function(self) -> Callable:
        return import_factory(self.factory, KEY, "plasticlab.run(model=...)")

    def build(self, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
        fn, shape = self.function(), tuple(input_shape)
        check_call(fn, 2, self.kwargs, "model", self.factory, CALL)
        model = fn(shape, n_out, **self.kwargs)
        if not isinstance(model, nn.Module):
            raise UserError(f"config: {KEY}={self.factory}: returned {type(model).__name__}, "
                            "expected a torch.nn.Module")
        check_output(model, shape, n_out, self.factory)
        if self.init != "default":  # why: measured here, on the fresh module, never on trained weights
            given = self.init if isinstance(self.init, dict) else measured_init(model)
            model.unit_init = {k: (v[0], float(v[1])) for k, v in given.items()}
        return model


@torch.no_grad()
def check_output(model: nn.Module, input_shape: tuple[int, ...], n_out: int, path: str) -> None:
    """Refuse (one line) a model that fails on, or gives the wrong shape for, a probe batch of zeros.

    The probe runs in eval mode (no batch-norm statistics change, no dropout) on the module's device.
    """
    p = next(iter(model.parameters()), None)
    x = torch.zeros(2, *input_shape, device=p.device if p is not None else "cpu")
    was = model.training
    model.eval()
    try:
        out = model(x)
    except (RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"config: {KEY}={path}: the model fails on a batch of shape {tuple(x.shape)}: {first} "
                        "(build it for the input_shape the factory is given)") from None
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_out):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"config: {KEY}={path}: the model maps a batch of shape {tuple(x.shape)} to {got}, expected "
                        f"{(2, n_out)} (its output layer must have the n_outputs the factory is given)")
