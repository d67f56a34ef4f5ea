"""A tiny stand-in for the engine loop that calls methods exactly as the protocol says.

Per step: loss = CE + Σ extra_loss → zero_grad → backward → add_grad → optimizer.step → after_step (cadence
``every``, config order); ``on_task_start``/``on_task_end`` at task boundaries; activations of
each unit layer captured by forward hooks when a method sets ``capture``.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from plasticlab import units
from plasticlab.methods.base import MethodContext
from plasticlab.models.mlp import MLP
from plasticlab.seeding import generator

N_IN, N_OUT = 6, 3

NAMES = ["l2", "l2-init", "spectral", "shrink-perturb", "redo", "cbp", "reset-frozen", "head-reset", "full-reset"]

# Settings that make each method act within a few steps of a tiny run.
BUSY = {
    "l2": {"coef": 1e-2},
    "l2-init": {"coef": 1e-2},
    "spectral": {"coef": 0.1, "iterations": 1},
    "shrink-perturb": {"when": "step", "every": 2, "noise_dist": "init"},
    "redo": {"every": 2, "tau": 0.5, "at_task_end": True},
    "cbp": {"replacement_rate": 0.2, "maturity": 2},
    "reset-frozen": {"tau": 3.0, "tasks": "all"},
    "head-reset": {},
    "full-reset": {},
}


def mlp_builder(hidden=(8, 8), norm: str = "layernorm") -> Callable[[int], nn.Module]:
    """seed → a freshly initialised tiny MLP (global RNG untouched)."""

    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MLP(N_IN, list(hidden), N_OUT, norm=norm)

    return build


class TinyConv(nn.Module):
    """conv(2→4, 3×3, pad 1) → ReLU → flatten (4·5·5) → Linear(100 → 3): outgoing slice with group 25."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(100, N_OUT)

    def forward(self, x):
        return self.head(self.act(self.conv(x.view(-1, 2, 5, 5))).flatten(1))

    def unit_layers(self) -> list[units.UnitLayer]:
        bound = 1.0 / (2 * 9) ** 0.5
        incoming = [units.Slice(self.conv.weight, 0, "uniform", bound),
                    units.Slice(self.conv.bias, 0, "uniform", bound, is_weight=False)]
        outgoing = [units.Slice(self.head.weight, 1, "uniform", 1.0 / 10.0, group=25)]
        return [units.UnitLayer("conv0", 4, incoming, outgoing, self.act, act_dim=1)]

    def head_slices(self) -> list[units.Slice]:
        return units.linear_slices(self.head, 0)


def conv_builder() -> Callable[[int], nn.Module]:
    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return TinyConv()

    return build


class TinyFF(nn.Module):
    """T5-style feed-forward on a sequence: (B, 6) → (B, 2, 3) → wi (3→8, no bias) → ReLU → wo (8→3) → head.

    The units are the 8 feed-forward neurons; their activation is (B, L, units), so ``act_dim = 2``.
    """

    def __init__(self):
        super().__init__()
        self.wi = nn.Linear(3, 8, bias=False)
        self.act = nn.ReLU()
        self.wo = nn.Linear(8, 3, bias=False)
        self.head = nn.Linear(6, N_OUT)
        with torch.no_grad():
            self.wi.weight.normal_(0, 3**-0.5)
            self.wo.weight.normal_(0, 8**-0.5)

    def forward(self, x):
        h = x.view(-1, 2, 3)
        return self.head((h + self.wo(self.act(self.wi(h)))).flatten(1))

    def unit_layers(self) -> list[units.UnitLayer]:
        return [units.UnitLayer("ff", 8, [units.Slice(self.wi.weight, 0, "normal", 3**-0.5)],
                                [units.Slice(self.wo.weight, 1, "normal", 8**-0.5)], self.act, act_dim=2)]

    def head_slices(self) -> list[units.Slice]:
        return units.linear_slices(self.head, 0)


def ff_builder() -> Callable[[int], nn.Module]:
    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return TinyFF()

    return build


class Driver:
    """Model + Adam + methods + capture hooks, stepping like the engine."""

    def __init__(self, methods: list, build: Callable[[int], nn.Module] | None = None, seed: int = 0,
                 lr: float = 1e-2, n_in: int = N_IN):
        build = build or mlp_builder()
        self.model = build(seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.methods = methods
        self.units = units.build(self.model)
        self.ctx = MethodContext(self.model, self.optimizer, self.units, seed, torch.device("cpu"),
                                 fresh_model=build, activations=[None] * len(self.units))
        self.n_in = n_in
        for m in methods:
            m.setup(self.ctx)
        if any(getattr(m, "capture", False) for m in methods):
            for i, layer in enumerate(self.units):
                layer.activation.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def fn(_m, _inp, out):
            self.ctx.activations[i] = out.detach()

        return fn

    def batch(self, step: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator("batch", step)
        x = torch.randn(size, self.n_in, generator=g)
        y = torch.randint(0, N_OUT, (size,), generator=g)
        return x, y

    def optimise(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward, extra losses, backward, optimizer.step — everything before after_step."""
        loss = F.cross_entropy(self.model(x), y)
        for m in self.methods:
            extra = m.extra_loss(self.model)
            if extra is not None:
                loss = loss + extra
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for m in self.methods:
            m.add_grad()
        self.optimizer.step()

    def after(self, step: int, x: torch.Tensor) -> None:
        for m in self.methods:
            if step % m.every == 0:
                m.after_step(step, x)

    def step(self, step: int) -> None:
        x, y = self.batch(step)
        self.optimise(x, y)
        self.after(step, x)

    def run(self, start: int, stop: int, steps_per_task: int) -> None:
        """Global steps [start, stop) with task boundaries every ``steps_per_task`` steps."""
        for step in range(start, stop):
            if step % steps_per_task == 0:
                for m in self.methods:
                    m.on_task_start(step // steps_per_task)
            self.step(step)
            if (step + 1) % steps_per_task == 0:
                for m in self.methods:
                    m.on_task_end(step // steps_per_task)

    def checkpoint(self) -> dict:
        """Round-trip through torch.save / torch.load(weights_only=True), as the store does."""
        buf = io.BytesIO()
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "methods": [m.state_dict() for m in self.methods]}, buf)
        buf.seek(0)
        return torch.load(buf, weights_only=True)

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for m, ms in zip(self.methods, state["methods"], strict=True):
            m.load_state_dict(ms)


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Deep copies of every parameter/buffer and every per-parameter optimiser state tensor."""
    names = {p: n for n, p in model.named_parameters()}
    state = {names[p]: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
             for p, s in optimizer.state.items()}
    return {"params": copy.deepcopy(model.state_dict()), "opt": state}
