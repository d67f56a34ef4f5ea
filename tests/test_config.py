import pytest

from plasticlab.config import config_hash, dump_yaml, load_config, to_dict
from plasticlab.registry import UserError


def test_default_config_round_trips():
    cfg = load_config()
    again = load_config(to_dict(cfg))
    assert dump_yaml(again) == dump_yaml(cfg)
    assert config_hash(again) == config_hash(cfg)
    assert cfg.data.name == "digits" and cfg.tasks.family == "random-labels"


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.hiden=3", "unknown key 'model.hiden' (allowed: name, hidden"),
        ("optim.lr=abc", "optim.lr: expected a number, got 'abc'"),
        ("optim.name=rmsprop", "optim.name: expected one of sgd, adam, adamw"),
        ("tasks.count=2.5", "tasks.count: expected an integer"),
        ("model.name=nope", "model.name: unknown 'nope'"),
        ("environment.transition.step=0.3", "1/step a whole number"),
        ("bogus=1", "unknown key 'bogus'"),
        ("method.name=none", None),
        ("environment.kind=input-interpolation", "does not fit tasks.family=random-labels"),
        ("model.hidden=[]", "model.hidden: expected a non-empty list"),
    ],
)
def test_config_errors_name_the_key(override, message):
    if message is None:
        load_config(None, [override])
        return
    with pytest.raises(UserError) as e:
        cfg = load_config(None, [override])
        from plasticlab.envs import build_schedule

        build_schedule(cfg.environment, 2, 10)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_overrides_parse_yaml_values():
    cfg = load_config(None, ["optim.lr=3e-4", "model.hidden=[8, 4]", "data.samples_per_class=null", "seed=7"])
    assert cfg.optim.lr == 3e-4 and cfg.model.hidden == [8, 4] and cfg.seed == 7
    assert cfg.data.samples_per_class is None


def test_yaml_file_errors(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)


def test_method_list_and_none():
    assert load_config(None, ["method.name=none"]).method == []
    with pytest.raises(UserError, match="unknown 'nope'"):
        load_config({"method": [{"name": "nope"}]})


def test_per_entry_step_selects_entry_adam():
    from plasticlab.engine.loop import setup
    from plasticlab.methods.entry_adam import EntryAdam

    s = setup(load_config(None, ["optim.per_entry_step=true", "model.hidden=[8]", "diagnostics.every=never"]))
    assert isinstance(s.optimizer, EntryAdam)
    with pytest.raises(UserError, match="only for adam/adamw"):
        load_config(None, ["optim.per_entry_step=true", "optim.name=sgd"])


def test_changing_a_tag_drops_the_old_components_options():
    cfg = load_config(None, ["model.name=cnn"])
    assert cfg.model.name == "cnn"
    cfg = load_config(None, ["method.name=redo", "method.tau=0.2"])
    assert cfg.method[0].tau == 0.2
    with pytest.raises(UserError, match="models that fit: t5"):
        load_config(None, ["tasks.family=bigram-cipher", "environment.kind=abrupt"])


def test_one_source_of_defaults_writing_a_default_changes_nothing():
    from plasticlab.config import load_config, to_dict

    default = to_dict(load_config(None))
    assert to_dict(load_config({"environment": {"kind": "abrupt"}})) == default
    assert to_dict(load_config({"model": {"name": "mlp"}, "tasks": {"family": "random-labels"}})) == default
    assert default["environment"]["epochs_per_task"] == 10 and default["tasks"] == {"family": "random-labels",
                                                                                      "count": 10}
    assert to_dict(load_config({"model": {"hidden": [16]}}))["model"]["name"] == "mlp"  # tag defaults too
