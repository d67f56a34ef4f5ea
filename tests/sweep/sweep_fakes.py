"""A fake run function with the contract of ``plasticlab.api.run`` (no training).

It writes the store's files (config.yaml, provenance.json, metrics.jsonl) and one ``task_end``
per task, resumes after the last finished task, and logs every call as a ``fake_call`` row so
tests can count calls. Behaviour is chosen by the config's ``optim.lr``:
``lr == DIVERGE`` → status diverged at task 1; ``lr == FAIL`` → raises; ``lr == FLAKY`` → raises
on the first call only. ``INTERRUPT`` = (run dir name substring, task) raises KeyboardInterrupt
after that task (status left ``running``), like Ctrl-C.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import yaml

DIVERGE = 9.0
FAIL = 7.0
FLAKY = 5.0
INTERRUPT: tuple[str, int] | None = None
SLEEP_S = float(os.environ.get("FAKE_SLEEP_S", "0"))


def _append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def _status(out: Path, status: str) -> None:
    (out / "provenance.json").write_text(json.dumps({"status": status}))


def fake_run(config: dict | None, *, out, resume: bool = False) -> Path:
    out = Path(out)
    metrics = out / "metrics.jsonl"
    if resume:
        config = yaml.safe_load((out / "config.yaml").read_text())
        done = [json.loads(x) for x in metrics.read_text().splitlines() if '"task_end"' in x]
        start = len(done)
        _status(out, "running")
    else:
        assert config is not None and not (out.exists() and any(out.iterdir()))
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config))
        _status(out, "running")
        start = 0
    lr = config["optim"]["lr"]
    calls = sum('"fake_call"' in x for x in metrics.read_text().splitlines()) if metrics.exists() else 0
    _append(metrics, {"event": "fake_call", "resume": resume, "threads": torch.get_num_threads(), "pid": os.getpid()})
    print(f"fake run {out.name} lr={lr} from task {start}")
    if lr == FAIL or (lr == FLAKY and calls == 0):
        _status(out, "failed")
        raise RuntimeError(f"boom at lr={lr}")
    for t in range(start, config["tasks"]["count"]):
        time.sleep(SLEEP_S)
        if lr == DIVERGE and t == 1:
            _append(metrics, {"event": "diverged", "message": "loss is nan"})
            _status(out, "diverged")
            return out
        _append(metrics, {"event": "task_end", "task": t, "train_acc": 1.0 / (1 + t + lr), "test_acc": None})
        if INTERRUPT is not None and INTERRUPT[0] in out.name and INTERRUPT[1] == t:
            raise KeyboardInterrupt
    _status(out, "done")
    return out


def calls(run_dir: Path) -> list[dict]:
    """The ``fake_call`` rows of a run (one per call of ``fake_run``)."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if '"fake_call"' in x]


def task_ends(run_dir: Path) -> list[int]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(x)["task"] for x in path.read_text().splitlines() if '"task_end"' in x]
