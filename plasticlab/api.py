"""Python API mirroring the CLI: ``plasticlab.run(config) -> run directory``.

Example::

    import plasticlab
    run_dir = plasticlab.run({"tasks": {"family": "random-labels", "count": 5}},
                             overrides=["environment.epochs_per_task=20"], out="runs/rl")
    rows = plasticlab.read_metrics(run_dir, "task_end")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from plasticlab.config import RunConfig, config_hash, dump_yaml, load_config, read_yaml
from plasticlab.registry import UserError
from plasticlab.store import (
    MetricsWriter,
    load_checkpoint,
    provenance,
    save_checkpoint,
    update_provenance,
    write_json,
)
from plasticlab.store.loggers import tee


def resolve(config: str | Path | dict | RunConfig | None = None, overrides: list[str] | None = None) -> RunConfig:
    """A validated ``RunConfig`` from a path, mapping, RunConfig or None (the default)."""
    if isinstance(config, RunConfig):
        if overrides:
            from plasticlab.config import to_dict

            return load_config(to_dict(config), overrides)
        return config
    return load_config(config, overrides)


def make_loggers(cfg: RunConfig, run_dir: Path) -> list:
    """The optional live loggers of ``engine.loggers`` (rows also go to metrics.jsonl)."""
    from plasticlab.config import to_dict
    from plasticlab.store.loggers import TensorBoardSink, WandbSink

    out = []
    for name in cfg.engine.loggers:
        if name == "tensorboard":
            out.append(TensorBoardSink(run_dir / "tensorboard"))
        else:
            out.append(WandbSink(dir=run_dir, config=to_dict(cfg), name=run_dir.name))
    return out


def default_out(cfg: RunConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{cfg.tasks.family}-{cfg.environment.kind}-{config_hash(cfg)}"


def run(config: str | Path | dict | RunConfig | None = None, *, overrides: list[str] | None = None,
        out: str | Path | None = None, device: str | None = None, resume: bool = False,
        progress: Callable[[int, int, int], None] | None = None) -> Path:
    """Run one experiment and return its run directory.

    Args:
        config: YAML path, raw mapping, ``RunConfig`` or None for the built-in default.
        overrides: ``a.b=v`` strings (``--set``).
        out: run directory (created; must not already hold a run unless ``resume``).
        device: ``auto``/``cpu``/``cuda``; overrides ``engine.device``.
        resume: continue the run in ``out`` from its latest checkpoint (its config.yaml is used;
            ``config`` must be None or equal to it). A finished run is returned as is.
    Raises:
        UserError: bad config, missing data, or a bad run directory (nothing is written).
    """
    from plasticlab.engine.loop import Diverged, pick_device
    from plasticlab.engine.loop import run as engine_run
    from plasticlab.engine.loop import setup as engine_setup

    if resume:
        if out is None:
            raise UserError("--resume needs the run directory (plasticlab run --resume DIR)")
        run_dir = Path(out)
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"cannot resume {run_dir}: no config.yaml there (is it a run directory?)")
        cfg = load_config(read_yaml(run_dir / "config.yaml"), overrides)
        if config is not None and dump_yaml(resolve(config)) != dump_yaml(cfg):
            raise UserError(f"cannot resume {run_dir} with a different config (drop CONFIG or --set)")
    else:
        cfg = resolve(config, overrides)
        run_dir = Path(out) if out is not None else default_out(cfg)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UserError(f"run directory {run_dir} is not empty (choose another --out, or --resume it)")
    if device is not None:
        cfg.engine.device = device
    dev = pick_device(cfg.engine.device)
    state = load_checkpoint(run_dir, map_location=dev) if resume else None
    if resume and state is not None and state.get("done"):
        return run_dir
    prepared = engine_setup(cfg, dev)  # raises UserError before anything is written
    fresh = not resume or not (run_dir / "provenance.json").exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        write_json(run_dir / "provenance.json", provenance(str(dev)))
    else:
        update_provenance(run_dir, status="running", resumed=True)
    writer = MetricsWriter(run_dir, truncate_to=state["metrics_bytes"] if state else 0)
    loggers = make_loggers(cfg, run_dir)
    sink = tee(writer, *loggers) if loggers else writer
    last = {}

    def save(st: dict) -> None:
        last["state"] = st
        save_checkpoint(run_dir, st, writer.tell())

    status = "failed"
    try:
        engine_run(cfg, sink, save=save, resume=state, prepared=prepared, progress=progress)
        status = "done"
        if "state" in last:
            save_checkpoint(run_dir, {**last["state"], "done": True}, writer.tell())
    except Diverged as e:
        status = "diverged"
        writer({"event": "diverged", "message": str(e)})
    except BaseException:
        import traceback

        (run_dir / "error.log").write_text(traceback.format_exc())
        raise
    finally:
        writer.close()
        for logger in loggers:
            logger.close()
        from plasticlab.store.rundir import now

        update_provenance(run_dir, status=status, end=now())
    return run_dir
