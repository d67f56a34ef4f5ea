"""Common tests over every registry (like scikit-learn's test_common): each registered component
builds with its defaults, trains 3 CPU steps through the engine, and its state round-trips."""

import pytest
import torch

from plasticlab import registry
from plasticlab.api import resolve
from plasticlab.engine import loop
from tests.conftest import run_steps

IMAGE_MODELS = sorted(n for n in registry.MODELS if n != "t5")
IMAGE_FAMILIES = sorted(n for n, f in registry.FAMILIES.items() if getattr(f, "uses_data", True))
BASE = ["tasks.count=2", "optim.batch_size=16", "diagnostics.every=never"]


def three_steps(s):
    """The accumulator after three steps of the real loop."""
    return run_steps([s], 3)[0]["acc"]


def model_overrides(name):
    small = {"resnet18": ["model.width=8"], "vgg": [], "cnn": [], "mlp": ["model.hidden=[16]"],
             "custom": ["model.factory=tests.user_code:make_mlp"]}
    return [f"model={{name: {name}}}"] + small.get(name, [])


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_model_trains_and_state_round_trips(name):
    cfg = resolve(None, BASE + model_overrides(name))
    s = loop.setup(cfg)
    acc = three_steps(s)
    assert torch.isfinite(acc).all() and acc[2].item() == 48
    t = loop.setup(cfg)
    t.model.load_state_dict(s.model.state_dict())
    t.optimizer.load_state_dict(s.optimizer.state_dict())
    s.model.eval(), t.model.eval()
    x = s.task(0).x_train[:4]
    assert torch.equal(s.model(x), t.model(x))
    assert len(s.unit_map) > 0


@pytest.mark.parametrize("name", IMAGE_FAMILIES)
def test_family_builds_deterministic_tasks(name):
    own = {"custom": ["tasks.factory=tests.user_code:FirstHalf"]}  # user code, tests/user_code.py
    cfg = resolve(None, BASE + [f"tasks={{family: {name}, count: 2}}", "model.hidden=[16]", *own.get(name, [])])
    s = loop.setup(cfg)
    a, b = s.family.make_task(s.base, 0, 1), s.family.make_task(s.base, 0, 1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.isfinite(three_steps(s)).all()
