"""``plasticlab diagnose CHECKPOINT``: the diagnostics of a saved model, as a table and JSON.

The checkpoint is loaded with ``torch.load(weights_only=True)`` (tensors and plain data only:
no arbitrary pickle code runs). The model is rebuilt from the run's ``config.yaml``, the task
the checkpoint was training is rebuilt from (seed, task), and the probe batch is drawn from the
seed exactly as the run drew it, so a checkpoint saved at a task end reproduces that task's
``task_end`` diagnostics.

Usage::

    doc = diagnose("runs/abc/checkpoints/latest.pt")   # or the run directory
    print(format_report(doc))
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from plasticlab.config import load_config, read_yaml
from plasticlab.diagnostics import METRICS
from plasticlab.engine.build import setup
from plasticlab.engine.loop import measure_task
from plasticlab.registry import UserError
from plasticlab.store import write_json

CHECKPOINT = Path("checkpoints") / "latest.pt"


def locate(checkpoint: str | Path) -> tuple[Path, Path]:
    """(checkpoint file, run directory) from a run directory or a checkpoint path."""
    p = Path(checkpoint)
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p} (pass a run directory or its {CHECKPOINT})")
    run_dir = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return p, run_dir


def load_state(path: Path, device: torch.device) -> dict:
    """The checkpoint dict, loaded safely (weights_only: tensors and plain containers only)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} holds more than tensors and plain data; refusing to unpickle it "
                        f"(only plasticlab checkpoints are accepted): {first}") from None
    except (OSError, RuntimeError, EOFError) as e:
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}); is it a plasticlab checkpoint?") \
            from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise UserError(f"checkpoint {path} has no 'model' state dict (is it a plasticlab checkpoint?)")
    return state


def diagnose(checkpoint: str | Path, *, config: str | Path | None = None, data_root: str | None = None,
             task: int | None = None, overrides: list[str] | None = None, device: str = "auto",
             out: str | Path | None = None) -> dict:
    """Diagnostics of a saved model on its task's probe batch; writes and returns the JSON document.

    Args:
        checkpoint: a run directory or a checkpoint file (``RUN/checkpoints/latest.pt``).
        config: the run's config.yaml (default: the one in the run directory).
        data_root: where the dataset files are (overrides ``data.root``).
        task: probe this task's inputs (default: the task the checkpoint was training).
        overrides: ``a.b=v`` changes to the run's config, e.g. ``diagnostics.frozen_tau=0.01`` or
            ``diagnostics.probe_size=256`` (the model must still fit the checkpoint).
        device: ``auto``, ``cpu`` or ``cuda``.
        out: JSON path (default: ``RUN/diagnose.json``).
    Returns:
        ``{"checkpoint", "run", "step", "task", "probe_size", train/test measures, diagnostics...,
        "layers": {...}}``.
    """
    path, run_dir = locate(checkpoint)
    target = Path(out) if out is not None else run_dir / "diagnose.json"
    if target.is_dir():
        raise UserError(f"--out {target} is a directory (give the JSON file's path, e.g. {target / 'diagnose.json'})")
    cfg_path = Path(config) if config is not None else run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise UserError(f"no config.yaml next to {path} (expected {cfg_path}); pass the run's config with --config")
    cfg = load_config(read_yaml(cfg_path), overrides)
    if data_root is not None:
        cfg.data.root = str(data_root)
    if cfg.diagnostics.probe_size < 1:
        raise UserError(f"diagnostics.probe_size={cfg.diagnostics.probe_size}: must be ≥ 1")
    cfg.engine.device = device
    cfg.diagnostics.every = "task"  # why: the probe batch is built only where diagnostics are on
    s = setup(cfg)  # the engine's builder: same device choice, data, model and memory format as the run
    state = load_state(path, s.device)
    try:
        s.model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise UserError(f"checkpoint {path} does not fit the model of {cfg_path}: "
                        f"{str(e).splitlines()[0]}") from None
    family = s.family
    step = int(state.get("step", 0))
    schedule = s.schedule
    t = schedule.task_at(step) if task is None else task
    if not 0 <= t < family.count:
        raise UserError(f"--task {t}: the run has tasks 0..{family.count - 1}")
    doc = {"checkpoint": str(path), "run": str(run_dir), "step": step, "task": t, "probe_size": s.probe_idx.numel()}
    # why: the run's own task-end measurement, so diagnose reports exactly what a task_end row holds
    # (θ₀ rebuilt from the seed; forgetting and the plasticity probe when switched on with --set)
    doc.update(measure_task(s, t, end=True))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, doc)
    doc["json"] = str(target)
    return doc


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def format_report(doc: dict) -> str:
    """A text table: header, overall metrics (one per line), then one row per unit layer."""
    lines = [f"checkpoint {doc['checkpoint']}  step {doc['step']}  task {doc['task']}  probe {doc['probe_size']}"]
    keys = [k for k in ("train_loss", "train_acc", "test_loss", "test_acc", "train_bleu2", "test_bleu2", *METRICS)
            if k in doc]
    width = max(len(k) for k in keys)
    lines += [f"  {k:<{width}}  {_fmt(doc[k])}" for k in keys]
    layers = doc.get("layers") or {}
    if layers:
        cols = list(next(iter(layers.values())))
        name_w = max(5, *(len(n) for n in layers))
        col_w = [max(8, len(c)) for c in cols]
        lines.append("")
        lines.append(f"  {'layer':<{name_w}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cols, col_w, strict=True)))
        for name, vals in layers.items():
            lines.append(f"  {name:<{name_w}}  " +
                         "  ".join(f"{_fmt(vals[c]):>{w}}" for c, w in zip(cols, col_w, strict=True)))
    if "json" in doc:
        lines.append(f"written: {doc['json']}")
    return "\n".join(lines)
