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
