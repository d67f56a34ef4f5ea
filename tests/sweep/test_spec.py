"""Sweep files: validation, grid × seeds expansion and run ids."""

from __future__ import annotations

import re

import pytest
import yaml

from plasticlab.config import config_hash, load_config
from plasticlab.registry import UserError
from plasticlab.sweep import load_sweep
from plasticlab.sweep.spec import run_id

BASE = {"tasks": {"family": "permuted-pixels", "count": 2}, "model": {"name": "mlp", "hidden": [8]}}


def test_expansion_is_grid_times_seeds_seed_major():
    sweep = load_sweep(
        {"base": BASE, "grid": {"optim.lr": [0.1, 0.01], "model.hidden": [[8], [16, 16]]}, "seeds": [0, 1]}
    )
    points = sweep.points()
    assert len(points) == 2 * 2 * 2
    assert [p.seed for p in points] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [(p.values["optim.lr"], p.values["model.hidden"]) for p in points[:4]] == [
        (0.1, [8]),
        (0.1, [16, 16]),
        (0.01, [8]),
        (0.01, [16, 16]),
    ]
    p = points[3]
    assert p.config["optim"]["lr"] == 0.01 and p.config["model"]["hidden"] == [16, 16] and p.config["seed"] == 0
    assert p.config["optim"]["name"] == "adam"  # the rest of the section keeps its default
    assert p.config["tasks"]["count"] == 2  # the base survives


def test_ids_are_stable_distinct_and_readable():
    raw = {"base": BASE, "grid": {"optim.lr": [0.1, 0.01], "method": [{"name": "none"}]}, "seeds": [0, 1, 2]}
    ids = [p.id for p in load_sweep(raw).points()]
    assert ids == [p.id for p in load_sweep(raw).points()]  # stable
    assert len(set(ids)) == len(ids) == 6  # distinct
    assert ids[0].startswith("lr=0.1_method=none-s0-") and re.fullmatch(r"[A-Za-z0-9._=+-]+", ids[0])
    cfg = load_config({**BASE, "optim": {"lr": 0.1}, "seed": 0})
    assert ids[0].endswith(config_hash(cfg))  # the hash of the resolved config


def test_run_id_cuts_long_prefixes_and_cleans_characters():
    rid = run_id({"method": {"name": "l2", "strength": 0.001}, "x.y": "a b/c" * 20}, 3, "abcdef123456")
    assert rid.endswith("-s3-abcdef123456") and len(rid) <= 60 + len("-s3-abcdef123456")
    assert rid.startswith("method=l2-strength=0.001-_y=a-b-c")
    assert run_id({}, 1, "ff") == "s1-ff"


def test_seeds_default_to_base_seed_and_missing_sections_start_from_defaults():
    points = load_sweep({"base": {"seed": 4}, "grid": {"tasks.count": [2, 3]}}).points()
    assert [p.seed for p in points] == [4, 4]
    assert [p.config["tasks"]["count"] for p in points] == [2, 3]
    assert points[0].config["tasks"]["family"] == "random-labels"


def test_base_path_is_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"base": "cfg/base.yaml", "grid": {"optim.lr": [0.1]}}))
    sweep = load_sweep(tmp_path / "sw.yaml")
    assert sweep.base == BASE and sweep.name == "sw"
    assert sweep.points()[0].config["model"]["hidden"] == [8]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"base": BASE, "grids": {}}, "unknown key 'grids'"),
        ({"base": BASE, "grid": {"optim.lr": 0.1}}, "optim.lr: expected a non-empty list"),
        ({"base": BASE, "grid": {"optim.lr": []}}, "non-empty list"),
        ({"base": BASE, "grid": {"seed": [0, 1]}}, "put seeds under 'seeds"),
        ({"base": BASE, "seeds": 3}, "seeds: expected a non-empty list of integers"),
        ({"base": BASE, "seeds": [0, 0]}, "repeats a seed"),
        ({"base": 5}, "base: expected a config mapping or the path"),
        ({"base": BASE, "grid": ["optim.lr"]}, "grid: expected a mapping"),
    ],
)
def test_bad_sweep_files_are_user_errors(raw, message):
    with pytest.raises(UserError, match=re.escape(message)):
        load_sweep(raw)


def test_bad_points_and_duplicates_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"sweep point \{optim\.lr=-1\} seed 0: config: optim.lr: must be > 0"):
        load_sweep({"base": BASE, "grid": {"optim.lr": [0.1, -1]}}).points()
    with pytest.raises(UserError, match=r"unknown key 'optim.rate'"):
        load_sweep({"base": BASE, "grid": {"optim.rate": [0.1]}}).points()
    with pytest.raises(UserError, match="give the same config"):
        load_sweep({"base": BASE, "grid": {"optim.lr": [0.001, 1.0e-3]}}).points()
    with pytest.raises(UserError, match="not found"):
        load_sweep(tmp_path / "missing.yaml")


UNION = [
    {"optim.lr": [0.1, 0.01], "method": [{"name": "none"}, {"name": "l2", "coef": 1.0e-3}]},
    {"environment.kind": ["input-interpolation"], "optim.lr": [0.1]},
    {"model.hidden": [[16]]},
]


def test_union_grid_is_the_union_of_the_products_in_order_seed_major():
    from plasticlab.sweep.spec import grid_keys

    sweep = load_sweep({"base": BASE, "grid": UNION, "seeds": [0, 1]})
    points = sweep.points()
    assert len(points) == (4 + 1 + 1) * 2
    assert [p.seed for p in points] == [0] * 6 + [1] * 6
    assert [p.values for p in points[:6]] == [
        {"optim.lr": 0.1, "method": {"name": "none"}},
        {"optim.lr": 0.1, "method": {"name": "l2", "coef": 1.0e-3}},
        {"optim.lr": 0.01, "method": {"name": "none"}},
        {"optim.lr": 0.01, "method": {"name": "l2", "coef": 1.0e-3}},
        {"environment.kind": "input-interpolation", "optim.lr": 0.1},  # only its own mapping's keys
        {"model.hidden": [16]},
    ]
    assert points[4].config["environment"]["kind"] == "input-interpolation"
    assert points[4].config["method"]["name"] == "none"
    default_lr = load_config({**BASE, "seed": 0}).optim.lr
    assert points[5].config["model"]["hidden"] == [16] and points[5].config["optim"]["lr"] == default_lr
    assert points[5].id.startswith("hidden=-16-s0-")
    assert grid_keys(UNION) == ["optim.lr", "method", "environment.kind", "model.hidden"]
    assert sweep.as_dict()["grid"] == UNION  # sweep.yaml keeps the list


def test_plain_grid_and_its_one_mapping_list_give_the_same_runs():
    grid = {"optim.lr": [0.1, 0.01], "model.hidden": [[8], [16, 16]]}
    plain = load_sweep({"base": BASE, "grid": grid, "seeds": [0, 1]}).points()
    listed = load_sweep({"base": BASE, "grid": [grid], "seeds": [0, 1]}).points()
    assert [(p.id, p.config) for p in plain] == [(p.id, p.config) for p in listed]


def test_union_grid_errors_are_one_line_naming_the_mapping():
    with pytest.raises(UserError, match=r"grid\[1\]: optim.lr: expected a non-empty list of values, got 0\.1$"):
        load_sweep({"base": BASE, "grid": [{"optim.lr": [0.1]}, {"optim.lr": 0.1}]})
    with pytest.raises(UserError, match=r"grid\[0\]: put seeds under"):
        load_sweep({"base": BASE, "grid": [{"seed": [1]}]})
    with pytest.raises(UserError, match=r"grid\[1\] is 'optim.lr'"):
        load_sweep({"base": BASE, "grid": [{}, "optim.lr"]})
    # the same config from two mappings: the duplicate error, one line
    same = r"grid points \{optim\.lr=0\.1\} and \{optim\.lr=0\.1, optim\.name=adam\} give the same config"
    with pytest.raises(UserError, match=same):
        load_sweep({"base": BASE, "grid": [{"optim.lr": [0.1]}, {"optim.lr": [0.1], "optim.name": ["adam"]}]}).points()


def test_run_labels_leave_out_keys_a_union_point_lacks():
    from plasticlab.sweep.driver import run_labels

    points = load_sweep({"base": BASE, "grid": UNION, "seeds": [0]}).points()
    labels = [run_labels(points)[p.id] for p in points]
    assert labels[0] == "lr=0.1 method=none s0" and labels[5] == "hidden=[16] s0"
    assert labels[4] == "lr=0.1 kind=input-interpolation s0"
