"""Transfer config: validation errors are one line naming the key; round trip; shipped recipes."""

from pathlib import Path

import pytest
import yaml

from plasticlab.registry import UserError
from plasticlab.transfer.config import dump_yaml, from_dict, load_transfer_config, to_plain

SOURCE = {"data": {"name": "digits"}, "tasks": {"family": "permuted-pixels", "count": 1},
          "environment": {"epochs_per_task": 1}, "model": {"name": "cnn", "channels": [4]},
          "optim": {"name": "adamw", "lr": 1e-2, "weight_decay": 0.1}}
RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs" / "transfer").glob("*.yaml"))


def raw(**changes):
    base = {"source": dict(SOURCE), "target": {"name": "digits", "samples_per_class": [5, 10], "steps": 10},
            "interventions": ["none", "reset-frozen"], "seeds": [0, 1]}
    base.update(changes)
    return base


def test_valid_config_resolves_sources_seeds_and_labels():
    cfg = from_dict(raw(interventions=["none", {"name": "reset-frozen", "tau": 0.05}, "full-reset"]))
    assert cfg.seeds == [0, 1]
    assert cfg.source.model.channels == [4]
    assert [iv.label for iv in cfg.interventions] == ["none", "reset-frozen(tau=0.05)", "full-reset"]
    assert cfg.interventions[1].method.tau == 0.05
    assert cfg.interventions[0].method is None


def test_seeds_default_to_the_source_seed():
    cfg = from_dict(raw(seeds=None, source={**SOURCE, "seed": 7}))
    assert cfg.seeds == [7]


@pytest.mark.parametrize("changes,match", [
    ({"extra": 1}, "unknown key 'extra'"),
    ({"target": {"name": "digits", "steps": 5, "sample": [5]}}, "unknown key 'target.sample'"),
    ({"target": {"name": "digits"}}, "exactly one of steps"),
    ({"target": {"name": "digits", "steps": 5, "epochs": 2}}, "exactly one of steps"),
    ({"target": {"name": "digits", "steps": 5, "samples_per_class": [0]}}, "samples_per_class"),
    ({"target": {"name": "digits", "steps": 5, "samples_per_class": [5, 5]}}, "repeat"),
    ({"target": {"name": "digits", "steps": 5, "optim": {"name": "lbfgs"}}}, "target.optim.name"),
    ({"interventions": ["redo"]}, "not an intervention"),
    ({"interventions": [{"name": "reset-frozen", "tasks": "all"}]}, r"interventions\[0\].tasks: not used"),
    ({"interventions": [{"name": "shrink-perturb", "when": "step"}]}, r"interventions\[0\].when"),
    ({"interventions": [{"name": "reset-frozen", "tau": "x"}]}, r"interventions\[0\].tau"),
    ({"interventions": ["none", "none"]}, "repeated intervention none"),
    ({"interventions": [{"name": "none", "tau": 1}]}, "takes no options"),
    ({"interventions": []}, "non-empty list"),
    ({"seeds": [0, 0]}, "seeds: values repeat"),
    ({"seeds": "0"}, "seeds: expected"),
    ({"source": {**SOURCE, "seed": 3}}, "source.seed: remove it"),
    ({"source": {**SOURCE, "optim": {"lr": "fast"}}}, "config: source.optim.lr"),
    ({"source": None}, "source: missing"),
])
def test_errors_name_the_key(changes, match):
    with pytest.raises(UserError, match=match) as e:
        from_dict(raw(**changes))
    assert "\n" not in str(e.value)


def test_source_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "src.yaml").write_text(yaml.safe_dump(SOURCE))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(raw(source="src.yaml")))
    cfg = load_transfer_config(tmp_path / "t.yaml", overrides=["target.steps=3", "source.optim.lr=0.5"])
    assert cfg.target.steps == 3 and cfg.source.optim.lr == 0.5
    with pytest.raises(UserError, match="config file not found"):
        from_dict(raw(source="missing.yaml"), tmp_path)


def test_written_config_loads_back_to_the_same_config(tmp_path):
    cfg = from_dict(raw(interventions=["none", {"name": "shrink-perturb", "shrink": 0.5}]))
    (tmp_path / "c.yaml").write_text(dump_yaml(cfg))
    again = load_transfer_config(tmp_path / "c.yaml")
    assert to_plain(again) == to_plain(cfg)
    assert [iv.label for iv in again.interventions] == ["none", "shrink-perturb(shrink=0.5)"]


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_transfer_recipes_validate(path):
    cfg = load_transfer_config(path)
    assert "none" in [iv.label for iv in cfg.interventions]
