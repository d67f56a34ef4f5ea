"""Run ``plasticlab run`` in its own process (``tests.test_cli.cli``) on small settings (after ``sets``,
which may choose the family); return its ``task_end`` records."""

import json
from pathlib import Path

from tests.test_cli import cli

SMALL = ("environment.epochs_per_task=1", "model.hidden=[32]", "engine.threads=1", "tasks.count=2")


def run_cli(out: Path, *sets: str) -> list[dict]:
    args = [a for s in (*sets, *SMALL) for a in ("--set", s)]
    r = cli("run", "--out", str(out), *args)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["event"] == "task_end"]
