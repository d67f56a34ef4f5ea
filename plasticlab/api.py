"""Python API mirroring the CLI: ``plasticlab.run(config) -> run directory``.

Example::

    import plasticlab
    run_dir = plasticlab.run({"tasks": {"family": "random-labels", "count": 5}},
                             overrides=["environment.epochs_per_task=20"], out="runs/rl")
    rows = plasticlab.read_metrics(run_dir, "task_end")

Your own model and task stream are passed as factories (docs/custom.md)::

    plasticlab.run("examples/label_noise.yaml", model=make_model, tasks=LabelNoise)
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from plasticlab import registry
from plasticlab.config import RunConfig, config_hash, dump_yaml, load_config, read_yaml, resume_changes
from plasticlab.registry import Interrupted, UserError
from plasticlab.store import provenance
from plasticlab.store.lifecycle import RunDirectory, graceful_stop


def resolve(config: str | Path | dict | RunConfig | None = None, overrides: list[str] | None = None, *,
            factories: dict[str, str] | None = None) -> RunConfig:
    """A validated ``RunConfig`` from a path, mapping, RunConfig or None (the default).

    ``factories``: ``{"model" | "tasks": factory label}`` (``given_factories``) selects the
    ``custom`` model / family with that factory before ``overrides`` apply; the section keeps
    the options the custom component has (``tasks.count``, ``kwargs``), the others go.
    """
    if isinstance(config, RunConfig):
        if not overrides and not factories:
            return config
        from plasticlab.config import to_dict

        config = to_dict(config)
    if not factories:
        return load_config(config, overrides)
    raw = {} if config is None else copy.deepcopy(config) if isinstance(config, dict) else read_yaml(config)
    for section, label in (factories or {}).items():
        tag, table = ("name", registry.MODELS) if section == "model" else ("family", registry.FAMILIES)
        keep = {f.name for f in dataclasses.fields(table["custom"])}
        old = raw.get(section) if isinstance(raw.get(section), dict) else {}
        raw[section] = {**{k: v for k, v in old.items() if k in keep}, tag: "custom", "factory": label}
    return load_config(raw, overrides)


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


def given_factories(model: Callable | None, tasks: Callable | None) -> dict[str, str]:
    """``{"model" | "tasks": label}`` of the factories given to ``run`` (for ``resolve``).

    Each is recorded under its import path when that path gives it back (the run can then be
    resumed from the CLI), else as ``in-process:module:qualname`` (``tasks.custom.give``).
    """
    from plasticlab.tasks.custom import give

    given = {"model": model, "tasks": tasks}
    return {k: give(fn, f"plasticlab.run({k}=...)") for k, fn in given.items() if fn is not None}


def run(config: str | Path | dict | RunConfig | None = None, *, overrides: list[str] | None = None,
        out: str | Path | None = None, device: str | None = None, resume: bool = False,
        progress: Callable[[int, int, int], None] | None = None, model: Callable | None = None,
        tasks: Callable | None = None) -> Path:
    """Run one experiment and return its run directory.

    Args:
        config: YAML path, raw mapping, ``RunConfig`` or None for the built-in default.
        overrides: ``a.b=v`` strings (``--set``). On resume only the keys of
            ``config.RESUME_SAFE`` may change (recorded in config.yaml and provenance.json).
        out: run directory (created; must not already hold a run unless ``resume``).
        device: ``auto``/``cpu``/``cuda``; overrides ``engine.device``.
        resume: continue the run in ``out`` from its latest checkpoint (its config.yaml is used;
            ``config`` must be None or equal to it). A finished run is returned as is.
        model: your model factory, ``model(input_shape, n_outputs, **kwargs) -> nn.Module``:
            the run uses ``model: {name: custom}`` with it (``model.kwargs`` from the config).
        tasks: your task-stream factory, ``tasks(data, **kwargs)`` (docs/custom.md): the run
            uses ``tasks: {family: custom}`` with it (``tasks.count``/``kwargs`` from the config).
            config.yaml records each under its import path, or as ``in-process:module:qualname``
            when it cannot be imported (resume such a run from Python, passing it again);
            provenance.json lists both under ``python_factories``.
    Raises:
        UserError: bad config, missing data, or a bad run directory (nothing is written).
        Interrupted: SIGINT/SIGTERM stopped the run; its checkpoint is written and its status
            is ``interrupted`` (``resume=True`` continues it exactly).
    """
    from plasticlab.engine import loop

    given = given_factories(model, tasks)
    if resume:
        if out is None:
            raise UserError("--resume needs the run directory (plasticlab run --resume DIR)")
        rd = RunDirectory(out)
        if not rd.is_run():
            raise UserError(f"cannot resume {rd.path}: no config.yaml there (is it a run directory?)")
        old = load_config(read_yaml(rd.path / "config.yaml"))
        cfg = resolve(rd.path / "config.yaml", overrides, factories=given)
        if config is not None and dump_yaml(resolve(config, factories=given)) != dump_yaml(old):
            raise UserError(f"cannot resume {rd.path} with a different config (drop CONFIG)")
    else:
        cfg = resolve(config, overrides, factories=given)
        rd = RunDirectory(out if out is not None else default_out(cfg))
        rd.check_empty()
    if device is not None:
        cfg.engine.device = device
    changed = resume_changes(old, cfg) if resume else {}
    dev = loop.pick_device(cfg.engine.device)
    state = rd.open_resume(dev) if resume else None
    if state is not None and state.get("done"):
        return rd.path
    try:
        members = [loop.setup(cfg, dev)]  # raises UserError before anything is written
    except BaseException:
        rd.unlock()
        raise
    prov = provenance(str(dev))
    if given:
        prov["python_factories"] = {f"{k}.factory": label for k, label in given.items()}
    rd.begin(dump_yaml(cfg), prov, make_loggers(cfg, rd.path), state, changed)
    train(rd, members, [state], progress)
    return rd.path


def train(rd_or_dirs, members: list, states: list, progress=None) -> None:
    """Train ``members`` into their open run directories and finish each one (the shared end of a run).

    ``rd_or_dirs``: one ``RunDirectory`` per member (or one for a single run). SIGINT/SIGTERM end
    every member ``interrupted`` and raise ``Interrupted``; an error ends them ``failed`` and raises.
    """
    from plasticlab.engine import loop

    dirs = rd_or_dirs if isinstance(rd_or_dirs, list) else [rd_or_dirs]
    try:
        with graceful_stop() as stop:
            result = loop.run(members, [d.sink for d in dirs], saves=[d.save for d in dirs], resumes=states,
                              progress=progress, stop=stop)
    except Interrupted as e:
        e.signum = stop.signum
        for d, st in zip(dirs, e.status, strict=True):
            d.finish("interrupted" if st is None else "diverged", None if st is None else str(st))
        raise
    except BaseException:
        for d in dirs:
            d.finish("failed")
        raise
    for d, st in zip(dirs, result, strict=True):
        d.finish("done" if st is None else "diverged", None if st is None else str(st))
