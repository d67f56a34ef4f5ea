"""Packed runs with run directories: the API-level counterpart of ``plasticlab.api.run`` for K runs.

``run_packed(configs, outs=dirs)`` trains K compatible configs as one batched model
(``plasticlab.engine.packed``) and writes each member's run directory exactly as ``api.run``
writes a single run's: ``config.yaml``, ``provenance.json`` (plus ``"packed": K``),
``metrics.jsonl`` and ``checkpoints/latest.pt``. A sweep groups its pending grid points with
``plan_packs`` and calls this per group (``plasticlab sweep --pack K``).

Example::

    from plasticlab.sweep.packed import plan_packs, run_packed
    packs, alone = plan_packs(cfgs, 16)          # alone: {index: why it cannot be packed}
    for idx in packs:
        run_packed([cfgs[i] for i in idx], outs=[dirs[i] for i in idx])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from plasticlab.api import make_loggers, resolve, train
from plasticlab.api import run as run_one
from plasticlab.config import RunConfig, dump_yaml, load_config, read_yaml
from plasticlab.engine import loop
from plasticlab.engine.packed import check_pack, plan_packs
from plasticlab.registry import UserError
from plasticlab.store import provenance
from plasticlab.store.lifecycle import RunDirectory

__all__ = ["plan_packs", "run_packed"]


def run_packed(configs: list[str | Path | dict | RunConfig | None], *, outs: list[str | Path],
               device: str | None = None, resume: bool = False,
               progress: Callable[[int, int, int], None] | None = None) -> list[Path]:
    """Run K compatible configs together; member k's directory is ``outs[k]``. Returns the directories.

    Args:
        configs: one config per member (as ``api.run`` takes them); with ``resume``, only used for
            members whose directory holds no run yet (may be None when all do).
        outs: run directories (created; must be empty unless ``resume``).
        device: ``auto``/``cpu``/``cuda``; overrides ``engine.device`` of every member.
        resume: continue the members that have a run directory from their checkpoints and start
            the others. Members at different steps (or finished ones) cannot share a pack: each
            is then started or resumed on its own with ``api.run``.
    Raises:
        UserError: bad config, missing data, a bad run directory, or configs that cannot share a
            pack (``plan_packs`` tells which can); nothing is written then.
        Interrupted: SIGINT/SIGTERM; every member is checkpointed and ``interrupted``.
    """
    dirs = [RunDirectory(o) for o in outs]
    started = [resume and d.is_run() for d in dirs]
    configs = list(configs) if configs is not None else [None] * len(dirs)
    if len(configs) != len(dirs):
        raise UserError(f"run_packed: {len(configs)} configs but {len(dirs)} run directories")
    for d, c, old in zip(dirs, configs, started, strict=True):
        if not old and resume and c is None:
            raise UserError(f"cannot resume {d.path}: no config.yaml there (is it a run directory?)")
        if not old:
            d.check_empty()
    cfgs = [load_config(read_yaml(d.path / "config.yaml")) if old else resolve(c)
            for d, c, old in zip(dirs, configs, started, strict=True)]
    for c in cfgs:
        if device is not None:
            c.engine.device = device
    dev = loop.pick_device(cfgs[0].engine.device)
    try:
        states = [d.open_resume(dev) if old else None for d, old in zip(dirs, started, strict=True)]
        if (any(s is not None and s.get("done") for s in states)
                or len({0 if s is None else int(s["step"]) for s in states}) > 1):
            for d in dirs:
                d.unlock()
            return [run_one(None if old else c, out=d.path, resume=old, device=device, progress=progress)
                    for d, c, old in zip(dirs, cfgs, started, strict=True)]
        check_pack(cfgs)
        members = loop.setup_pack(cfgs, dev)  # raises before anything is written
    except BaseException:
        for d in dirs:
            d.unlock()
        raise
    for d, cfg, st in zip(dirs, cfgs, states, strict=True):
        d.begin(dump_yaml(cfg), {**provenance(str(dev)), "packed": len(dirs)}, make_loggers(cfg, d.path), st)
    train(dirs, members, states, progress)
    return [d.path for d in dirs]
