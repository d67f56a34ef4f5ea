"""Every packaged recipe validates (both profiles, every point) and runs its quick profile at a
reduced size: 2 tasks of 1 epoch, one seed, the first value of each grid axis."""

import copy

import pytest

from plasticlab import recipes
from plasticlab.registry import UserError
from plasticlab.sweep.spec import load_sweep

NAMES = recipes.names()


def is_transfer(spec):
    return "transfer" in spec


@pytest.mark.parametrize("name", NAMES)
def test_recipe_profiles_validate(name):
    raw = recipes.load_recipe(name)
    assert {"description", "claim", "measure", "profiles"} <= set(raw)
    assert {"quick", "paper"} <= set(raw["profiles"])
    cost = raw["profiles"]["paper"].get("cost") or ""
    assert cost, "the paper profile states its expected cost"
    assert "estimat" in cost or "measured" in cost, "a cost says whether it was measured or is an estimate"
    for profile in ("quick", "paper"):
        spec = recipes.sweep_of(name, profile)
        if is_transfer(spec):
            from plasticlab.transfer import load_transfer_config

            load_transfer_config(spec["transfer"])
        else:
            assert load_sweep(spec).points()


def reduced(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    if is_transfer(spec):
        t = spec["transfer"]
        t["seeds"] = t["seeds"][:1]
        if t.get("source_grid"):
            t["source_grid"] = {k: v[:2] for k, v in t["source_grid"].items()}
        t["source"]["environment"]["epochs_per_task"] = 1
        t["target"]["samples_per_class"] = t["target"]["samples_per_class"][:1]
        t["target"].pop("epochs", None)
        t["target"]["steps"] = 5
        return spec
    base = spec["base"]
    base["tasks"]["count"] = 2
    base["environment"]["epochs_per_task"] = 1
    base.setdefault("diagnostics", {})["probe_size"] = 64
    grid = spec["grid"]
    first = grid[0] if isinstance(grid, list) else grid  # a union grid: its first mapping
    spec["grid"] = {k: v[:1] for k, v in first.items()}
    spec["seeds"] = spec["seeds"][:1]
    return spec


@pytest.mark.parametrize("name", NAMES)
def test_quick_profile_runs_at_reduced_size(name, tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "sweep_of", lambda n, p="quick", _orig=recipes.sweep_of: reduced(_orig(n, p)))
    root = recipes.run(name, profile="quick", out=tmp_path / name, progress=False)
    assert (root / "recipe.yaml").exists()
    if is_transfer(recipes.load_recipe(name)["profiles"]["quick"]):
        assert (root / "results.csv").exists()
        if recipes.load_recipe(name).get("analysis"):
            assert (root / "correlation.txt").exists()
    else:
        assert (root / "report" / "report.md").exists()
        from plasticlab.sweep import read_status_table

        assert {r["status"] for r in read_status_table(root)} == {"done"}


def test_unknown_recipe_and_profile():
    with pytest.raises(UserError, match="unknown recipe"):
        recipes.load_recipe("nope")
    with pytest.raises(UserError, match="no profile"):
        recipes.sweep_of("quickstart", "huge")


def test_a_recipe_baseline_must_be_a_mapping(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "FOLDER", tmp_path)
    (tmp_path / "r.yaml").write_text("description: d\nbaseline: abrupt\nprofiles: {}\n")
    with pytest.raises(UserError, match="baseline: expected a mapping"):
        recipes.load_recipe("r")
    (tmp_path / "r.yaml").write_text("description: d\nbaseline: {environment.kind: abrupt}\nprofiles: {}\n")
    assert recipes.load_recipe("r")["baseline"] == {"environment.kind": "abrupt"}
