"""Every method on every image model through the engine's own setup and train_step (conv units,
grouped conv→linear columns, residual blocks): it acts, training stays finite, state round-trips."""

import io

import pytest
import torch
import yaml

from plasticlab import registry
from plasticlab.api import resolve
from plasticlab.engine import loop
from tests.methods.methods_driver import BUSY, NAMES

# why: vgg shares the cnn's unit map (ConvNet.unit_layers) and is too large for a unit test.
MODELS = {"mlp": ["model.hidden=[16, 16]"],
          "cnn": ["model.channels=[8, 16]", "model.spatial=2", "model.hidden=[16]", "model.norm=batchnorm"],
          "resnet18": ["model.width=8"]}
MODELS = {k: v for k, v in MODELS.items() if k in registry.MODELS}


def setup(model: str, method: str):
    options = yaml.safe_dump({"name": method, **BUSY[method]}, default_flow_style=True).strip()
    cfg = resolve(None, ["tasks={family: random-labels, count: 2}", "optim.batch_size=16", "diagnostics.every=never",
                         f"model={{name: {model}}}", *MODELS[model], f"method={options}"])
    return loop.setup(cfg, torch.device("cpu"))


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("method", NAMES)
def test_method_on_model(model, method):
    s = setup(model, method)
    m = s.methods[0]
    if model == "cnn":
        assert any(o.group > 1 for layer in s.unit_map for o in layer.outgoing)  # conv → flatten → linear
    hooks = loop.capture_hooks(s)
    start = {k: v.clone() for k, v in s.model.state_dict().items()}
    acc = torch.zeros(3)
    cache: dict = {}
    phase = s.schedule.phases[0]
    m.on_task_start(0)
    for step in range(4):
        x, y = s.env.batch(phase, None, s.task(0), loop.batch_indices(s, step, cache))
        loop.train_step(s, x, y, step, acc)
    m.on_task_end(0)
    m.on_task_start(1)
    for h in hooks:
        h.remove()
    assert torch.isfinite(acc).all() and all(torch.isfinite(p).all() for p in s.model.parameters())
    if method == "cbp":
        assert sum(int((a == 0).sum()) for a in m.age_) > 0  # some units were replaced
    if method in ("redo", "reset-frozen", "head-reset", "full-reset", "shrink-perturb", "cbp"):
        assert any(not torch.equal(v, s.model.state_dict()[k]) for k, v in start.items())
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    t = setup(model, method)
    t.methods[0].load_state_dict(torch.load(buf, weights_only=True))
    for k, v in m.state_dict().items():
        assert all(torch.equal(a, b) for a, b in zip(v, t.methods[0].state_dict()[k], strict=True))
