"""The one builder: everything a run needs before step 0, from its config.

``setup(cfg)`` is used by every entry point — ``run``, packed sweeps (``setup_pack``), transfer
fine-tuning (``model=`` and ``base=`` given) and ``diagnose`` — so device choice, channels-last,
compilation, unit maps and method setup are decided in one place.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from plasticlab import diagnostics, registry, unit_discovery, units
from plasticlab.config import RunConfig, to_dict
from plasticlab.data import load_dataset
from plasticlab.data.base import declared_labels
from plasticlab.engine.accel import maybe_compile, notice, resolve_precision
from plasticlab.engine.optim import make_optimizer, resolve_optim
from plasticlab.envs import build_schedule, dropped_levels_note, steps_per_epoch
from plasticlab.methods import MethodContext
from plasticlab.registry import UserError
from plasticlab.seeding import derived_seed

TORCH_THREADS = torch.get_num_threads()
"""torch's thread count when plasticlab was imported: what ``engine.threads: 0`` means, even after
an earlier run in this process set another count."""


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)


def build_model(cfg: RunConfig, input_shape: tuple[int, ...], n_out: int, seed: int, device) -> nn.Module:
    """The model of ``cfg``, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, "init"))
        model = cfg.model.build(input_shape, n_out)
    return place(model, cfg, input_shape, device)


def place(model: nn.Module, cfg: RunConfig, input_shape: tuple[int, ...], device) -> nn.Module:
    """``model`` on ``device``, in channels-last memory format where ``engine.channels_last`` asks."""
    if cfg.engine.channels_last and len(input_shape) == 3:
        model = model.to(memory_format=torch.channels_last)  # 4-d weights only
    return model.to(device)


@dataclass
class Setup:
    """Everything one run (one member of a pack) builds before step 0."""

    cfg: RunConfig
    device: torch.device
    base: object
    family: object
    model: nn.Module
    optimizer: torch.optim.Optimizer
    unit_map: list
    methods: list
    ctx: MethodContext
    schedule: object
    env: object
    probe_idx: torch.Tensor | None
    n_train: int
    loss_fn: Callable
    """``family.loss``, compiled when ``engine.compile`` (the eager step's forward + loss)."""
    tasks: dict = field(default_factory=dict)
    compiled: dict = field(default_factory=dict)
    """Compiled step graphs built for this run, kept across ``loop.run`` calls (no recompiling)."""
    init_params: dict | None = None
    """θ₀ for the ``param_distance`` diagnostic: the model's trainable parameters as built here
    (from the seed, or the given ``model``), before any checkpoint is loaded; None without diagnostics."""

    def task(self, t: int):
        """Task t, built on first use; only the tasks in use are kept."""
        if t not in self.tasks:
            self.tasks = {k: v for k, v in self.tasks.items() if k >= t - 1}
            self.tasks[t] = self.family.make_task(self.base, self.cfg.seed, t)
        return self.tasks[t]


def resolve_engine(cfg: RunConfig, device: torch.device) -> None:
    """Replace ``auto`` engine settings by what the run computes with, so config.yaml records them.

    ``threads: auto`` → 1 torch thread per run: plasticity runs are small networks whose matrix
    products gain little from more threads, runs in a sweep never oversubscribe the cores, and the
    numbers (which depend on the thread count) do not depend on the machine or the executor.
    ``precision: auto`` → bf16 where the device has bf16 matrix units, else fp32
    (``accel.resolve_precision``, which also warns about bf16 without them).
    """
    e = cfg.engine
    if e.threads == "auto":
        e.threads = 1
    e.precision = resolve_precision(e.precision, device)


def load_base(cfg: RunConfig, device: torch.device):
    """The dataset of ``cfg`` (or the family's own generated data) as device tensors."""
    d = cfg.data
    if not getattr(cfg.tasks, "uses_data", True):
        return cfg.tasks.prepare(cfg.seed, device)
    return load_dataset(d.name, root=d.root, samples_per_class=d.samples_per_class,
                        test_samples_per_class=d.test_samples_per_class, normalize=d.normalize, seed=cfg.seed,
                        device=device)


def task_sizes(family, base, seed: int) -> list[int]:
    """Training examples of each task: ``family.task_size(base, seed, t)`` where the family declares
    it (tasks of different sizes), else one size for all (``family.n_train(base)`` or the base's)."""
    if hasattr(family, "task_size"):
        return [family.task_size(base, seed, t) for t in range(family.count)]
    n_train = family.n_train(base) if hasattr(family, "n_train") else base.y_train.shape[0]
    return [n_train] * family.count


def sizing_base(cfg: RunConfig):
    """What ``schedule_of`` needs of ``cfg``'s data, read as little as possible (``run --dry-run``):
    the family's own generated data; else the dataset's declared class counts (``Labels``, no file
    read) unless the family sizes its tasks from the data itself (``n_train(base)``: custom streams);
    else the loaded dataset."""
    d = cfg.data
    if getattr(cfg.tasks, "uses_data", True) and not hasattr(cfg.tasks, "n_train"):
        labels = declared_labels(d.name, d.samples_per_class, d.test_samples_per_class)
        if labels is not None:
            return labels
    return load_base(cfg, torch.device("cpu"))


def refuse_unfit_diagnostics(cfg: RunConfig) -> None:
    """One-line refusals of task-end diagnostics the family cannot serve: accuracy-based ones
    (``past_tasks``, ``probe_steps``) for a regression (``accuracy = False``), the plasticity probe
    for tasks of different sizes (its one-task run assumes task 0's size)."""
    fam, d = cfg.tasks, cfg.diagnostics
    for key in ("past_tasks", "probe_steps"):
        if getattr(d, key) and not getattr(fam, "accuracy", True):
            raise UserError(f"config: diagnostics.{key}: measures accuracy, which tasks.family={fam.family} "
                            "(a regression) does not have; set it to 0")
    if d.probe_steps and hasattr(fam, "task_size"):
        raise UserError(f"config: diagnostics.probe_steps: not for tasks.family={fam.family}, whose tasks "
                        "differ in size; set it to 0")


def schedule_of(cfg: RunConfig, base) -> tuple[int, object]:
    """(task 0's training examples, the phase schedule) of ``cfg`` on its loaded data ``base`` (or
    the ``sizing_base`` of its data).

    A task's epoch is its own size: S_t = ⌊N_t/B⌋ (one S for all when the sizes agree)."""
    refuse_unfit_diagnostics(cfg)
    sizes = task_sizes(cfg.tasks, base, cfg.seed)
    spe = [steps_per_epoch(n, cfg.optim.batch_size) for n in sizes]
    return sizes[0], build_schedule(cfg.environment, cfg.tasks.count, spe)


def setup(cfg: RunConfig, device: torch.device | None = None, *, base: object | None = None,
          model: nn.Module | None = None, factory: Callable[[int], nn.Module] | None = None) -> Setup:
    """Build data, model, optimiser, unit map, methods and schedule for ``cfg``.

    Args:
        device: default ``pick_device(cfg.engine.device)``.
        base: the already loaded dataset of ``cfg`` (pack members share one copy; transfer
            passes its target subset).
        model: an existing model to train instead of a fresh one (transfer fine-tuning).
        factory: ``seed → nn.Module`` used instead of ``cfg.model`` for the model (from the run's
            init seed) and for methods' fresh models (Python API: your own architecture).
    Raises:
        UserError: missing data or a config the data cannot serve (before anything is written).
    """
    device = device or pick_device(cfg.engine.device)
    resolve_engine(cfg, device)
    resolve_optim(cfg)
    torch.set_num_threads(cfg.engine.threads or TORCH_THREADS)
    family = cfg.tasks
    base = load_base(cfg, device) if base is None else base
    n_out, in_shape = family.n_outputs(base), family.input_shape(base)
    if cfg.augment.enabled and len(in_shape) != 3:
        raise UserError("config: augment.enabled: needs image data (C, H, W); set augment.enabled=false")
    if factory is None:
        def fresh(seed: int) -> nn.Module:
            return build_model(cfg, in_shape, n_out, seed, device)
    else:
        def fresh(seed: int) -> nn.Module:
            with torch.random.fork_rng(devices=[]):
                return place(factory(seed), cfg, in_shape, device)
    model = fresh(derived_seed(cfg.seed, "init") if factory else cfg.seed) if model is None else place(
        model, cfg, in_shape, device)
    optimizer = make_optimizer(model, cfg.optim, cfg.seed)
    example = torch.zeros((2, *in_shape), device=device)
    unit_map = units.build(model, example_input=example)  # the automatic map where the model has none
    if (cfg.method or cfg.diagnostics.every != "never") and (note := unit_discovery.partial_map_note(model, example)):
        notice(note, once=True)
    ctx = MethodContext(model, optimizer, unit_map, cfg.seed, device, fresh_model=fresh,
                        activations=[None] * len(unit_map))
    methods = [dataclasses.replace(m) for m in cfg.method]  # fresh instances: state is per run, not per config
    for m in methods:
        m.setup(ctx)
    n_train, schedule = schedule_of(cfg, base)
    if note := dropped_levels_note(schedule):
        notice(note, once=True)
    env = registry.ENVIRONMENTS[cfg.environment.kind](classes=n_out, mode=cfg.environment.transition.mode)
    probe_idx, init_params = None, None
    if cfg.diagnostics.every != "never":
        probe_idx = diagnostics.probe_indices(cfg.seed, n_train, cfg.diagnostics.probe_size, device)
        init_params = diagnostics.initial_params(model)
    return Setup(cfg, device, base, family, model, optimizer, unit_map, methods, ctx, schedule, env, probe_idx,
                 n_train, maybe_compile(family.loss, cfg.engine.compile), init_params=init_params)


def setup_pack(cfgs: list[RunConfig], device: torch.device | None = None) -> list[Setup]:
    """``setup`` of every member of a pack; members whose data agree share one loaded dataset.

    Members with subsampled data (``samples_per_class`` or ``test_samples_per_class`` set), or
    whose family generates its data, draw it from their own seed: only equal seeds share it.
    """
    device = device or pick_device(cfgs[0].engine.device)
    cache: dict[str, object] = {}
    out = []
    for cfg in cfgs:
        d = cfg.data
        own = (d.samples_per_class is not None or d.test_samples_per_class is not None
               or not getattr(cfg.tasks, "uses_data", True))
        key = json.dumps([to_dict(cfg)["data"], to_dict(cfg)["tasks"]["family"], cfg.seed if own else None])
        if key not in cache:
            cache[key] = load_base(cfg, device)
        out.append(setup(cfg, device, base=cache[key]))
    return out
