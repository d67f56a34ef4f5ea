import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("PLASTICLAB_DATA", "/nonexistent-plasticlab-data")

TINY = [
    "model.hidden=[32, 32]",
    "tasks.count=3",
    "environment.epochs_per_task=2",
    "environment.transition.length=1.0",
    "optim.batch_size=100",
    "diagnostics.probe_size=128",
]


@pytest.fixture
def tiny():
    """Overrides for a run of a few hundred steps on digits."""
    return list(TINY)


def run_steps(members, n: int, between=None) -> list[dict]:
    """Train ``members`` (``build.setup`` results) through the real loop for ``n`` steps, then stop.

    Uses the loop's ``stop`` hook: it is polled once per step boundary, so ``between(k)`` runs
    after k ≥ 1 steps. Returns each member's checkpoint state at the stop (``acc``, ``step``, …).
    """
    from plasticlab.engine import loop
    from plasticlab.registry import Interrupted

    done, states = [0], [None] * len(members)

    def stop() -> bool:
        done[0] += 1
        if between is not None and done[0] < n:
            between(done[0])
        return done[0] >= n

    def saver(k):
        return lambda st: states.__setitem__(k, st)

    try:
        loop.run(members, [lambda row: None] * len(members), saves=[saver(k) for k in range(len(members))],
                 stop=stop)
    except Interrupted:
        return states
    raise AssertionError(f"the run ended before {n} steps")
