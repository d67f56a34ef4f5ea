"""Plasticity probe: how well the model still learns a new task (``diagnostics.probe_steps``).

Definition (docs/diagnostics.md, *Plasticity probe*): at the end of task t, with N = probe_steps
and T* = task ``family.count + 1000 + t`` of the run's family (built from the run's seed; an index
the run never trains on),

    probe_acc       = train accuracy on T* of a copy of θ_t after N steps on T*
    probe_fresh_acc = train accuracy on T* of θ₀ after the same N steps on T*
    probe_gap       = probe_fresh_acc − probe_acc

where θ_t is the model at the end of task t and θ₀ the run's initialisation (rebuilt by
``setup`` from the run's seed, as the run built it). Both trainings use the run's optimiser
settings with a fresh optimiser state, the run's batch size, augmentation and precision, no
methods, and the same batches (shuffles drawn from the run's seed). A positive gap means the
trained network learns a new task worse than a freshly initialised one: loss of plasticity.
Source: the "train from the current parameters vs. from scratch on a new task" comparison that
defines loss of plasticity (Lyle et al., "Understanding Plasticity in Neural Networks", ICML 2023,
and Dohare et al., Nature 2024); plasticlab's probe task, step count and gap are its own choices.

Both trainings go through the engine's own builder and loop (``setup`` and ``run``, passed in by
the caller because diagnostics sit below the engine), like transfer fine-tuning. The run is not
touched: the copy is a separate model loaded from the run's ``state_dict`` (no hooks of the run's
methods), and the global RNG streams are forked around the probe, so the run's rows, weights,
optimiser state and resume are the same with the probe on or off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from plasticlab.config import DiagnosticsConfig, EnvironmentConfig, RunConfig
from plasticlab.envs import steps_per_epoch
from plasticlab.seeding import derived_seed

PROBE_OFFSET = 1000
"""The probe task of the end of task t is ``family.count + PROBE_OFFSET + t``."""


class OneTask:
    """Task ``index`` of ``family`` (from ``seed``) as a one-task family for the engine.

    Everything else (loss, measure, shapes, ``cross_entropy``, …) is the wrapped family's.
    """

    count = 1
    kinds = ("abrupt",)

    def __init__(self, family, seed: int, index: int):
        self.family, self.seed, self.index = family, seed, index

    def make_task(self, base, seed: int, t: int):
        return self.family.make_task(base, self.seed, self.index)

    def __getattr__(self, name: str):
        if name == "family":  # why: not yet set (copy/pickle build the object without __init__)
            raise AttributeError(name)
        return getattr(self.family, name)


def probe_task_index(family, t: int) -> int:
    """The task index the probe of task t's end trains on: one the run never uses."""
    return family.count + PROBE_OFFSET + t


def probe_config(cfg: RunConfig, family, n_train: int, t: int, steps: int) -> RunConfig:
    """The engine config of one probe training: ``steps`` steps of one abrupt task, no methods, no diagnostics."""
    spe = steps_per_epoch(n_train, cfg.optim.batch_size)
    return dataclasses.replace(
        cfg, tasks=OneTask(family, cfg.seed, probe_task_index(family, t)), method=[],
        environment=EnvironmentConfig(kind="abrupt", epochs_per_task=steps / spe, compute_matched=False),
        diagnostics=DiagnosticsConfig(every="never"),
        engine=dataclasses.replace(cfg.engine, compile=False, checkpoint_every=0, loggers=[]))


def plasticity_probe(s, t: int, setup: Callable, run: Callable) -> dict:
    """``{"probe_acc", "probe_fresh_acc", "probe_gap"}`` at the end of task ``t`` of Setup ``s``.

    Args:
        s: the run's ``engine.build.Setup`` (read only).
        setup, run: ``engine.build.setup`` and ``engine.loop.run``.
    A probe training that diverges gives None for its accuracy (and for the gap).
    """
    cfg = probe_config(s.cfg, s.family, s.n_train, t, s.cfg.diagnostics.probe_steps)
    copy_model = s.ctx.fresh_model(s.cfg.seed)
    copy_model.load_state_dict(s.model.state_dict())  # copies the values: the run's tensors are not shared
    devices = [s.device] if s.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derived_seed(s.cfg.seed, "plasticity-probe", t))
        acc = _train_acc(run, setup(cfg, s.device, base=s.base, model=copy_model))
        torch.manual_seed(derived_seed(s.cfg.seed, "plasticity-probe", t))
        fresh = _train_acc(run, setup(cfg, s.device, base=s.base))
    gap = None if acc is None or fresh is None else fresh - acc
    return {"probe_acc": acc, "probe_fresh_acc": fresh, "probe_gap": gap}


def _train_acc(run: Callable, member) -> float | None:
    ends: list[dict] = []
    diverged = run([member], [lambda row: ends.append(row) if row["event"] == "task_end" else None])[0]
    return None if diverged is not None or not ends else ends[-1]["train_acc"]
