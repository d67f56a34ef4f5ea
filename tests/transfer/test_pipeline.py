"""The transfer pipeline end to end on tiny data: digits source → a synthetic RGB target (other channels,
size and class count); the reset touches exactly the frozen units; the head fits the target; errors write nothing."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from plasticlab import registry
from plasticlab.cli import main
from plasticlab.data.base import ArrayData, DatasetSpec
from plasticlab.diagnostics import frozen_mask
from plasticlab.envs import build_schedule, steps_per_epoch
from plasticlab.registry import UserError
from plasticlab.transfer import load_transfer_config, read_results, run_transfer
from plasticlab.transfer.config import from_dict
from plasticlab.transfer.pipeline import Source, finetune_config, pretrained_model, target_model
from plasticlab.units import build

CPU = torch.device("cpu")
TAU = 0.1
SOURCE = {"data": {"name": "digits"}, "tasks": {"family": "permuted-pixels", "count": 1},
          "environment": {"epochs_per_task": 2}, "model": {"name": "cnn", "channels": [4, 8], "hidden": [8]},
          "optim": {"name": "adamw", "lr": 3e-2, "batch_size": 64, "weight_decay": 1.0},
          "diagnostics": {"probe_size": 64, "frozen_tau": TAU}}


def tiny_rgb(_folder):
    """4 classes of 12×12 RGB images: a class colour plus noise (12 train, 5 test per class)."""
    rng = np.random.default_rng(0)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32)

    def make(per):
        y = np.repeat(np.arange(4), per)
        x = 0.6 * colours[y][:, :, None, None] + 0.4 * rng.random((len(y), 3, 12, 12), dtype=np.float32)
        return x.astype(np.float32), y.astype(np.int64)

    x_tr, y_tr = make(12)
    x_te, y_te = make(5)
    return ArrayData(x_tr, y_tr, x_te, y_te, classes=4)


def two_channel(_folder):
    x = np.zeros((8, 2, 8, 8), dtype=np.float32)
    y = np.repeat(np.arange(2), 4).astype(np.int64)
    return ArrayData(x, y, x, y, classes=2)


@pytest.fixture(scope="module", autouse=True)
def datasets():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.DATASETS, "tiny-rgb", DatasetSpec("tiny-rgb", tiny_rgb, embedded=True))
        mp.setitem(registry.DATASETS, "two-channel", DatasetSpec("two-channel", two_channel, embedded=True))
        yield


def config(**target):
    return {"source": SOURCE,
            "target": {"name": "tiny-rgb", "samples_per_class": [2, 4], "steps": 3,
                       "optim": {"name": "adam", "lr": 1e-3, "batch_size": 8}, **target},
            "interventions": ["none", {"name": "reset-frozen", "tau": TAU}, "head-reset"], "seeds": [0]}


@pytest.fixture(scope="module")
def out(tmp_path_factory, datasets):
    return run_transfer(config(), out=tmp_path_factory.mktemp("transfer") / "out")


@pytest.fixture(scope="module")
def pre(out):
    cfg = load_transfer_config(config())
    src = Source(dataclasses.replace(cfg.source, seed=0), (1, 8, 8), 10)
    return cfg, src, pretrained_model(src, out / "pretrain" / "seed0", 0, CPU)


def test_outputs_follow_the_layout(out):
    assert json.loads((out / "provenance.json").read_text())["status"] == "done"
    assert (out / "pretrain" / "seed0" / "checkpoints" / "latest.pt").is_file()
    assert (out / "table.txt").read_text().startswith("target test accuracy")
    rows = read_results(out)
    assert [(r["intervention"], r["samples_per_class"]) for r in rows] == [
        ("none", 2), ("none", 4), ("reset-frozen(tau=0.1)", 2), ("reset-frozen(tau=0.1)", 4),
        ("head-reset", 2), ("head-reset", 4)]
    for r in rows:
        assert r["classes"] == 4 and r["n_train"] == 4 * r["samples_per_class"] and r["steps"] == 3
        assert r["batch_size"] == min(8, r["n_train"])
        assert 0.0 <= r["test_acc"] <= 1.0 and not r["diverged"]
        assert {"frozen_fraction", "input_sensitivity"} <= set(r["intervened"]) & set(r["finetuned"])
        assert r["pretrained"]["task"] == 0 and r["pretrained"]["frozen_fraction"] > 0
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and "finetuned.input_sensitivity" in csv_lines[0]
    curves = (out / "curves.jsonl").read_text().splitlines()
    assert sum(json.loads(c)["steps"] for c in curves) == 6 * 3
    again = load_transfer_config(out / "config.yaml")
    assert [iv.label for iv in again.interventions] == [r["intervention"] for r in rows[::2]]


def test_reset_touched_exactly_the_frozen_units(out, pre):
    cfg, src, model = pre
    layers = build(model)
    masks = [frozen_mask(layer, TAU) for layer in layers]
    counts = {layer.name: int(m.sum()) for layer, m in zip(layers, masks, strict=True)}
    assert 0 < sum(counts.values()) < sum(layer.count for layer in layers)  # a real test: some, not all
    rows = {r["intervention"]: r for r in read_results(out) if r["samples_per_class"] == 2}
    assert rows["reset-frozen(tau=0.1)"]["changed_units"] == counts
    assert set(rows["none"]["changed_units"].values()) == {0}
    assert set(rows["head-reset"]["changed_units"].values()) == {0}

    # every entry of a frozen unit's incoming and outgoing slices changed; every other entry is bit-identical
    names = {id(t): k for k, t in [*model.named_parameters(), *model.named_buffers()]}
    expected = {k: torch.zeros_like(t, dtype=torch.bool) for k, t in model.state_dict().items()}
    for layer, m in zip(layers, masks, strict=True):
        for s in layer.incoming + layer.outgoing:
            expected[names[id(s.tensor)]] |= s.unit_mask(m)
    after, _ = target_model(cfg.interventions[1], model, src, 4, "auto", 0, CPU)
    before = model.state_dict()
    for k, v in after.state_dict().items():
        if k.startswith("head."):
            continue
        assert torch.equal(v != before[k], expected[k]), k


def test_head_has_the_target_class_count(pre):
    cfg, src, model = pre
    none = cfg.interventions[0]
    new, _ = target_model(none, model, src, 4, "auto", 0, CPU)
    assert new.head.out_features == 4 and new(torch.zeros(3, 1, 8, 8)).shape == (3, 4)
    assert not torch.equal(new.head.weight[:4], model.head.weight[:4])
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(new.state_dict()[k], v) for k, v in body.items())
    kept, _ = target_model(none, model, src, 10, "auto", 0, CPU)  # same class count: the source head stays
    assert all(torch.equal(kept.state_dict()[k], v) for k, v in model.state_dict().items())
    fresh, _ = target_model(none, model, src, 10, "new", 0, CPU)
    assert fresh.head.out_features == 10 and not torch.equal(fresh.head.weight, model.head.weight)


@pytest.mark.parametrize("target,match", [
    ({"name": "mnist"}, "dataset 'mnist' not found"),
    ({"samples_per_class": [2, 50]}, "N=50 but class"),
    ({"name": "two-channel"}, "cannot convert 2-channel"),
])
def test_user_errors_write_nothing(tmp_path, target, match):
    dest = tmp_path / "out"
    with pytest.raises(UserError, match=match):
        run_transfer(config(**target), out=dest)
    assert not dest.exists()


def test_non_empty_output_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not an empty directory"):
        run_transfer(config(), out=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_cli_transfer(tmp_path, capsys):
    raw = config(samples_per_class=[2])
    raw.update(interventions=["none"], source={**SOURCE, "environment": {"epochs_per_task": 1}})
    path = tmp_path / "t.yaml"
    path.write_text(json.dumps(raw))  # JSON is YAML
    assert main(["transfer", str(path), "--out", str(tmp_path / "o"), "--quiet", "--device", "cpu"]) == 0
    assert "N=2" in capsys.readouterr().out
    from_dict(raw)  # the same mapping validates through the API
    assert main(["transfer", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("plasticlab: error:") and "not an empty directory" in err and "\n" not in err


@pytest.mark.parametrize("length,expected", [({"steps": 7}, {2: 7, 4: 7}), ({"epochs": 3}, {2: 3, 4: 6})])
def test_finetuning_length_in_steps_or_epochs(length, expected):
    raw = config(samples_per_class=[2, 4])
    del raw["target"]["steps"]
    raw["target"].update(length)
    cfg = from_dict(raw)
    src = Source(cfg.source, (1, 8, 8), 10)
    for n, steps in expected.items():
        n_train = 4 * n  # 4 classes; batch min(8, n_train) = 8 → 1 or 2 steps per epoch
        ft = finetune_config(cfg, src, 0, n, n_train)
        assert ft.optim.batch_size == 8 and ft.method == [] and ft.environment.kind == "abrupt"
        assert build_schedule(ft.environment, 1, steps_per_epoch(n_train, 8)).total_steps == steps


def test_a_custom_model_transfers_with_its_automatic_map(tmp_path, datasets):
    """A plain user module (no unit_layers/head_slices): reset-frozen and head-reset act through the
    automatic unit map and head, and the new head has the target's class count."""
    raw = config(samples_per_class=[2])
    raw["source"] = {**SOURCE, "model": {"name": "custom", "factory": "tests.user_code:make_mlp"},
                     "environment": {"epochs_per_task": 1}}
    res = read_results(run_transfer(raw, out=tmp_path / "out"))
    assert {r["intervention"] for r in res} == {"none", f"reset-frozen(tau={TAU})", "head-reset"}
    head = next(r for r in res if r["intervention"] == "head-reset")
    assert head["changed_units"] == {"fc1": 0, "fc2": 0}  # the automatic map's layers; a head reset changes none
    assert all(r["test_acc"] is not None for r in res)


def test_a_model_without_a_head_is_refused_by_transfer(tmp_path, datasets):
    raw = config()
    raw["source"] = {**SOURCE, "model": {"name": "custom", "factory": "tests.user_code:make_no_head"}}
    with pytest.raises(UserError, match="no unit map or head"):
        run_transfer(raw, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
