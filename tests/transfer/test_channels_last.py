"""engine.channels_last: conv weights and batches in NHWC; training matches the default layout."""

import torch

from plasticlab.api import resolve
from plasticlab.engine import loop
from tests.conftest import run_steps

BASE = ["tasks.family=permuted-pixels", "tasks.count=1", "model={name: cnn, channels: [4, 8], hidden: [8]}",
        "optim.batch_size=32", "diagnostics.every=never"]


def test_channels_last_matches_the_default_layout():
    runs = {}
    for flag in (False, True):
        s = loop.setup(resolve(None, BASE + [f"engine.channels_last={str(flag).lower()}"]), torch.device("cpu"))
        conv = s.model.convs[1].weight  # why: convs[0] has 1 input channel, contiguous in both layouts
        assert conv.is_contiguous(memory_format=torch.channels_last) == flag
        acc = run_steps([s], 3)[0]["acc"]
        assert s.model.convs[1].weight.is_contiguous(memory_format=torch.channels_last) == flag
        runs[flag] = ({k: v.clone() for k, v in s.model.state_dict().items()}, acc.clone())
    (a, acc_a), (b, acc_b) = runs[False], runs[True]
    assert torch.allclose(acc_a, acc_b, atol=1e-4)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_channels_last_leaves_flat_models_alone():
    s = loop.setup(resolve(None, ["engine.channels_last=true", "model.hidden=[8]"]), torch.device("cpu"))
    assert all(p.is_contiguous() for p in s.model.parameters())
