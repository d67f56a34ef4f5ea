"""Tiny runs of the real engine for the method tests.

``tiny(...)`` builds a ``Setup`` with ``plasticlab.engine.build.setup`` from a config (methods
from ``method=``), a hand-written test model (``factory``) and random data (``base``). Training
is always the engine's own: ``step`` is one ``train_step`` through ``EagerStep`` (which installs
the activation capture hooks) and ``run``/``run_until`` are ``loop.run``. Nothing here steps an
optimiser or walks a schedule by itself; to look inside a run, ``spy`` wraps one hook of a
method so the engine's own call to it runs a check before and/or after it.

Schedule of ``tiny(tasks=T, steps_per_task=S)``: abrupt, not compute-matched, one epoch per task
of S full batches of ``BATCH`` examples, so task t is global steps [t·S, (t+1)·S).
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable

import torch
from torch import nn

from plasticlab import units
from plasticlab.api import resolve
from plasticlab.data.base import Dataset
from plasticlab.engine import loop
from plasticlab.engine.build import Setup, setup
from plasticlab.engine.steps import EagerStep
from plasticlab.models.mlp import MLP
from plasticlab.registry import Interrupted

N_IN, N_OUT, BATCH = 6, 3, 16


def mlp_builder(hidden=(8, 8), norm: str = "layernorm") -> Callable[[int], nn.Module]:
    """seed → a freshly initialised tiny MLP (global RNG untouched)."""

    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MLP(N_IN, list(hidden), N_OUT, norm=norm)

    return build


class TinyConv(nn.Module):
    """conv(2→4, 3×3, pad 1) → ReLU → flatten (4·5·5) → Linear(100 → 3): outgoing slice with group 25."""

    n_in = 50

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


def dataset(n_train: int, n_in: int = N_IN) -> Dataset:
    """Standard-normal inputs (n, n_in) with random class ids in [0, N_OUT); a small test set."""
    g = torch.Generator().manual_seed(1234)
    x, xt = torch.randn(n_train, n_in, generator=g), torch.randn(BATCH, n_in, generator=g)
    y, yt = torch.randint(0, N_OUT, (n_train,), generator=g), torch.randint(0, N_OUT, (BATCH,), generator=g)
    return Dataset(x, y, xt, yt, N_OUT)


def options(*methods: dict) -> str:
    """The ``method=`` override of these method sections (JSON is YAML)."""
    return f"method={json.dumps(list(methods))}"


def tiny(*methods: dict, factory: Callable[[int], nn.Module] | None = None, tasks: int = 2,
         steps_per_task: int = 4, lr: float = 1e-2, optim: str = "adam", overrides: tuple[str, ...] = ()) -> Setup:
    """The engine's ``Setup`` of a tiny random-labels run of ``methods`` (config sections) on a test model.

    ``factory`` defaults to ``mlp_builder()``; a model class with an ``n_in`` attribute gets inputs of that width.
    """
    factory = factory or mlp_builder()
    n_in = getattr(factory(0), "n_in", N_IN)
    cfg = resolve(None, [f"tasks={{family: random-labels, count: {tasks}}}", "environment.epochs_per_task=1",
                         "environment.compute_matched=false", f"optim.name={optim}", f"optim.lr={lr}",
                         f"optim.batch_size={BATCH}", "diagnostics.every=never", "engine.device=cpu",
                         options(*methods), *overrides])
    return setup(cfg, torch.device("cpu"), base=dataset(steps_per_task * BATCH, n_in), factory=factory)


def batch(s: Setup, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The engine's batch of global ``step`` of task 0 (``loop.batch``)."""
    return loop.batch(s, s.schedule.phases[0], None, s.task(0), step, {})


def step(s: Setup, k: int) -> None:
    """One real optimiser step numbered ``k`` (``EagerStep``: activations captured for methods that capture)."""
    eager = EagerStep(s)
    try:
        eager([batch(s, k)], k, torch.zeros(1, 3))
    finally:
        eager.close()


def run(s: Setup, *, saves: list | None = None, resumes: list | None = None) -> list[dict]:
    """The whole schedule of ``s`` through ``loop.run``; returns its rows."""
    rows: list[dict] = []
    assert loop.run([s], [rows.append], saves=saves, resumes=resumes) == [None]
    return rows


def run_until(s: Setup, n: int) -> tuple[list[dict], dict]:
    """``loop.run`` stopped (its ``stop`` hook) after ``n`` steps: its rows and its checkpoint at the stop."""
    rows: list[dict] = []
    saved: list[dict] = []
    polls = iter(range(1, 10**9))
    try:
        loop.run([s], [rows.append], saves=[lambda st: saved.append(through_disk(st))],
                 stop=lambda: next(polls) >= n)
    except Interrupted as e:
        assert e.step == n == saved[-1]["step"]
        return rows, saved[-1]
    raise AssertionError(f"the run ended before {n} steps")


def spy(m, hook: str, before: Callable | None = None, after: Callable | None = None) -> list:
    """Wrap ``m.<hook>`` so every call the engine makes runs ``before(*args)`` and ``after(*args)``
    around the real hook. Returns the list of the calls' first arguments (step or task)."""
    real = getattr(m, hook)
    calls: list = []

    def wrapped(*args):
        calls.append(args[0] if args else None)
        if before is not None:
            before(*args)
        out = real(*args)
        if after is not None:
            after(*args)
        return out

    setattr(m, hook, wrapped)  # an instance attribute: the engine's m.<hook>(...) finds it first
    return calls


def through_disk(obj):
    """``obj`` after ``torch.save`` and ``torch.load(weights_only=True)``, as the store does."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Deep copies of every parameter/buffer and every per-parameter optimiser state tensor."""
    names = {p: n for n, p in model.named_parameters()}
    state = {names[p]: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
             for p, s in optimizer.state.items()}
    return {"params": copy.deepcopy(model.state_dict()), "opt": state}
