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

import traceback
from collections.abc import Callable
from pathlib import Path

from plasticlab.api import make_loggers, resolve
from plasticlab.api import run as run_one
from plasticlab.config import RunConfig, dump_yaml, load_config, read_yaml
from plasticlab.engine.loop import pick_device
from plasticlab.engine.packed import plan_packs, setup_pack
from plasticlab.engine.packed import run_packed as engine_run_packed
from plasticlab.registry import UserError
from plasticlab.store import MetricsWriter, load_checkpoint, provenance, save_checkpoint, update_provenance, write_json
from plasticlab.store.loggers import tee
from plasticlab.store.rundir import now

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
    """
    dirs = [Path(o) for o in outs]
    started = [resume and (d / "config.yaml").is_file() for d in dirs]
    configs = list(configs) if configs is not None else [None] * len(dirs)
    if len(configs) != len(dirs):
        raise UserError(f"run_packed: {len(configs)} configs but {len(dirs)} run directories")
    for d, c, old in zip(dirs, configs, started, strict=True):
        if not old and resume and c is None:
            raise UserError(f"cannot resume {d}: no config.yaml there (is it a run directory?)")
        if not old and d.exists() and any(d.iterdir()):
            raise UserError(f"run directory {d} is not empty (choose another --out, or --resume it)")
    cfgs = [load_config(read_yaml(d / "config.yaml")) if old else resolve(c)
            for d, c, old in zip(dirs, configs, started, strict=True)]
    for c in cfgs:
        if device is not None:
            c.engine.device = device
    dev = pick_device(cfgs[0].engine.device)
    states = [load_checkpoint(d, map_location=dev) if old else None for d, old in zip(dirs, started, strict=True)]
    if (any(s is not None and s.get("done") for s in states)
            or len({0 if s is None else int(s["step"]) for s in states}) > 1):
        return [run_one(None if old else c, out=d, resume=old, device=device, progress=progress)
                for d, c, old in zip(dirs, cfgs, started, strict=True)]
    try:
        pack = setup_pack(cfgs, dev)  # raises before anything is written
    except ValueError as e:
        raise UserError(str(e)) from None
    writers, sinks, loggers, lasts = [], [], [], [{} for _ in dirs]
    for d, cfg, st, old in zip(dirs, cfgs, states, started, strict=True):
        fresh = not old or not (d / "provenance.json").exists()
        d.mkdir(parents=True, exist_ok=True)
        if fresh:
            (d / "config.yaml").write_text(dump_yaml(cfg))
            write_json(d / "provenance.json", {**provenance(str(dev)), "packed": len(dirs)})
        else:
            update_provenance(d, status="running", resumed=True)
        writers.append(MetricsWriter(d, truncate_to=st["metrics_bytes"] if st else 0))
        loggers.append(make_loggers(cfg, d))
        sinks.append(tee(writers[-1], *loggers[-1]) if loggers[-1] else writers[-1])

    def saver(k: int) -> Callable[[dict], None]:
        def save(state: dict) -> None:
            lasts[k]["state"] = state
            save_checkpoint(dirs[k], state, writers[k].tell())

        return save

    statuses = ["failed"] * len(dirs)
    try:
        result = engine_run_packed(cfgs, sinks, saves=[saver(k) for k in range(len(dirs))], resumes=states,
                                   prepared=pack, progress=progress)
        for k, diverged in enumerate(result):
            if diverged is None:
                statuses[k] = "done"
                if "state" in lasts[k]:
                    save_checkpoint(dirs[k], {**lasts[k]["state"], "done": True}, writers[k].tell())
            else:
                statuses[k] = "diverged"
                writers[k]({"event": "diverged", "message": str(diverged)})
    except BaseException:
        for d in dirs:
            (d / "error.log").write_text(traceback.format_exc())
        raise
    finally:
        for d, w, member_loggers, status in zip(dirs, writers, loggers, statuses, strict=True):
            w.close()
            for logger in member_loggers:
                logger.close()
            update_provenance(d, status=status, end=now())
    return dirs
