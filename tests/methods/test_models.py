"""Every registered method on every image model through the engine's own setup and loop (conv
units, grouped conv→linear columns, residual blocks): it acts, training stays finite, state round-trips."""

import functools

import pytest
import torch

from plasticlab import registry
from plasticlab.api import resolve
from plasticlab.engine import build
from tests.methods.methods_driver import options, run, spy, through_disk

# why: vgg shares the cnn's unit map (ConvNet.unit_layers) and is too large for a unit test.
MODELS = {"mlp": ["model.hidden=[16, 16]"],
          "cnn": ["model.channels=[8, 16]", "model.spatial=2", "model.hidden=[16]", "model.norm=batchnorm"],
          "resnet18": ["model.width=8"]}
MODELS = {k: v for k, v in MODELS.items() if k in registry.MODELS}
# why: under batchnorm every unit's ReLU output has about the same mean |h|, so ReDo's scores stay
# near 1 (≥ 0.75 here) and its busy τ = 0.5 finds no dormant unit; τ = 1 resets the units below the
# layer mean, which exercises the conv and residual unit maps.
BATCHNORM_OPTIONS = {"redo": {"tau": 1.0}}
# Digits, 4 images per class: 40 images = 2 batches of 16 per epoch; 2 epochs per task, 2 tasks: 8 steps.
RUN = ["tasks={family: random-labels, count: 2}", "data.samples_per_class=4", "optim.batch_size=16",
       "environment.epochs_per_task=2", "environment.compute_matched=false", "diagnostics.every=never",
       "engine.device=cpu"]


def setup(model: str, *methods: dict):
    cfg = resolve(None, [*RUN, f"model={{name: {model}}}", *MODELS[model], options(*methods)])
    return build.setup(cfg, torch.device("cpu"))


@functools.cache
def without_method(model: str) -> tuple[list, dict]:
    s = setup(model)
    return run(s), s.model.state_dict()


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("method", sorted(registry.METHODS))
def test_method_on_model(model, method):
    section = {"name": method, **registry.METHODS[method].busy}
    if model != "mlp":
        section.update(BATCHNORM_OPTIONS.get(method, {}))
    s = setup(model, section)
    m = s.methods[0]
    if model == "cnn":
        assert any(o.group > 1 for layer in s.unit_map for o in layer.outgoing)  # conv → flatten → linear
    replaced = []
    if method == "cbp":
        spy(m, "after_step", after=lambda *_: replaced.append(sum(int((a == 0).sum()) for a in m.age_)))
    rows = run(s)
    assert all(torch.isfinite(p).all() for p in s.model.parameters())
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows if r["event"] == "epoch")
    if method == "cbp":
        assert sum(replaced) > 0  # some units were replaced
    plain_rows, plain = without_method(model)
    assert rows != plain_rows and any(not torch.equal(v, s.model.state_dict()[k]) for k, v in plain.items())
    t = setup(model, section)
    t.methods[0].load_state_dict(through_disk(m.state_dict()))
    for k, v in m.state_dict().items():
        assert all(torch.equal(a, b) for a, b in zip(v, t.methods[0].state_dict()[k], strict=True))
