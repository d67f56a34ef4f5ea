"""Transfer ``source_grid``: one pre-training per grid point × seed, each adapted with the same protocol.

Checked on tiny digits runs: the key's one-line errors; the rows, run directories and CSV columns;
the recorded ``pretrained.input_sensitivity`` is the diagnostic's value for that pre-trained model;
and the fine-tuning of every grid point of a seed differs only in the weights it starts from.
"""

import copy
import dataclasses

import pytest
import torch

from plasticlab import diagnostics, units
from plasticlab.engine import loop
from plasticlab.registry import UserError
from plasticlab.transfer import load_transfer_config, read_results, run_transfer
from plasticlab.transfer.config import from_dict, source_points, to_plain
from plasticlab.transfer.pipeline import Source, finetune, load_target, pretrained_model, target_model

CPU = torch.device("cpu")
SOURCE = {"data": {"name": "digits"}, "tasks": {"family": "permuted-pixels", "count": 1},
          "environment": {"epochs_per_task": 2}, "model": {"name": "mlp", "hidden": [16, 16]},
          "optim": {"name": "adam", "lr": 1e-2, "batch_size": 64},
          "diagnostics": {"probe_size": 64}, "engine": {"threads": 1}}
GRID = {"optim.weight_decay": [0.0, 0.3]}


def config(**changes):
    raw = {"source": copy.deepcopy(SOURCE), "source_grid": copy.deepcopy(GRID),
           "target": {"name": "digits", "samples_per_class": [5], "steps": 6,
                      "optim": {"name": "sgd", "lr": 1e-2, "momentum": 0.9, "batch_size": 16}},
           "interventions": ["none"], "seeds": [0, 1]}
    raw.update(changes)
    return raw


@pytest.mark.parametrize("grid,match", [
    (3, r"^config: source_grid: expected a mapping"),
    ({"optim.lr": []}, r"^config: source_grid: optim.lr: expected a non-empty list"),
    ({"optim.lr": 0.1}, r"^config: source_grid: optim.lr: expected a non-empty list"),
    ({"seed": [1, 2]}, r"^config: source_grid: put seeds under"),
    ({"optim.lr": [-1.0]}, r"^config: source_grid: .*optim\.lr"),
    ({"optim.nope": [1]}, r"^config: source_grid: .*optim\.nope"),
    ({"optim.lr": [1e-3, 1e-3]}, r"^config: source_grid: .*same config"),
])
def test_bad_grids_are_one_line_errors(grid, match):
    with pytest.raises(UserError, match=match) as e:
        from_dict(config(source_grid=grid))
    assert "\n" not in str(e.value)


def test_points_are_seed_major_and_round_trip():
    cfg = from_dict(config())
    pts = source_points(cfg)
    assert [(p.seed, p.values["optim.weight_decay"]) for p in pts] == [(0, 0.0), (0, 0.3), (1, 0.0), (1, 0.3)]
    assert [p.cfg.optim.weight_decay for p in pts] == [0.0, 0.3, 0.0, 0.3]
    assert [p.cfg.seed for p in pts] == [0, 0, 1, 1] and len({p.dir for p in pts}) == 4
    again = from_dict(to_plain(cfg))
    assert [p.cfg for p in source_points(again)] == [p.cfg for p in pts]
    plain = from_dict(config(source_grid=None))
    assert "source_grid" not in to_plain(plain)
    assert [(p.seed, p.values, p.dir) for p in source_points(plain)] == [(0, {}, "seed0"), (1, {}, "seed1")]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return run_transfer(config(), out=tmp_path_factory.mktemp("grid") / "out")


def test_one_pretraining_per_point_and_seed(out):
    rows = read_results(out)
    assert [(r["seed"], r["grid"]) for r in rows] == [
        (0, {"optim.weight_decay": 0.0}), (0, {"optim.weight_decay": 0.3}),
        (1, {"optim.weight_decay": 0.0}), (1, {"optim.weight_decay": 0.3})]
    cfg = load_transfer_config(out / "config.yaml")
    assert cfg.source_grid == GRID
    for p in source_points(cfg):
        assert (out / "pretrain" / p.dir / "checkpoints" / "latest.pt").is_file()
    head = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "grid.optim.weight_decay" in head and "pretrained.input_sensitivity" in head
    table = (out / "table.txt").read_text()
    assert "source {optim.weight_decay=0}:" in table and "source {optim.weight_decay=0.3}:" in table
    # the weight decay made a difference (else the checks below could pass by accident)
    sens = [r["pretrained"]["input_sensitivity"] for r in rows]
    assert sens[0] != sens[1] and sens[2] != sens[3]
    assert (rows[0]["test_acc"], rows[2]["test_acc"]) != (rows[1]["test_acc"], rows[3]["test_acc"])


def test_recorded_sensitivity_is_the_diagnostic_of_that_model(out):
    cfg = load_transfer_config(out / "config.yaml")
    rows = read_results(out)
    for p, row in zip(source_points(cfg), rows, strict=True):
        s = loop.setup(p.cfg, CPU)
        task = s.task(0)
        model = pretrained_model(Source(p.cfg, (1, 8, 8), 10), out / "pretrain" / p.dir, p.seed, CPU)
        probe = s.probe_idx
        got = diagnostics.measure(model, units.build(model), task.x_train[probe], task.y_train[probe], s.family.loss,
                                  p.cfg.diagnostics)
        assert got["input_sensitivity"] == pytest.approx(row["pretrained"]["input_sensitivity"], rel=1e-6)
        assert got["frozen_fraction"] == pytest.approx(row["pretrained"]["frozen_fraction"], abs=1e-12)
        assert got["dead_fraction"] == pytest.approx(row["pretrained"]["dead_fraction"], abs=1e-12)


def test_every_point_is_adapted_with_the_same_protocol(out):
    """Same seed and N: the same fine-tuning config (hash); and fine-tuning grid point A's model under grid
    point B's source config gives A's row exactly: nothing but the starting weights depends on the point."""
    cfg = load_transfer_config(out / "config.yaml")
    rows = read_results(out)
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["seed"], set()).add(r["finetune_hash"])
    assert all(len(h) == 1 for h in by_seed.values()) and len(set().union(*by_seed.values())) == 2

    pts = source_points(cfg)
    a, b = pts[0], pts[1]  # seed 0, weight decay 0.0 and 0.3
    for p in (a, b):
        p.cfg.engine.device = "cpu"  # as the pre-training run resolved it
    assert rows[0]["test_acc"] != rows[1]["test_acc"] or rows[0]["train_loss"] != rows[1]["train_loss"]
    src_a, src_b = Source(a.cfg, (1, 8, 8), 10), Source(b.cfg, (1, 8, 8), 10)
    pool = load_target(cfg, src_b, 0, CPU)
    for weights_of, expected in ((src_a, rows[0]), (src_b, rows[1])):
        pre = pretrained_model(weights_of, out / "pretrain" / (a if weights_of is src_a else b).dir, 0, CPU)
        model, _ = target_model(cfg.interventions[0], pre, src_b, 10, cfg.target.head, 0, CPU)
        got = finetune(cfg, src_b, pool, model, 0, 5, lambda _row: None)
        assert got["finetune_hash"] == expected["finetune_hash"]
        for k in ("test_acc", "test_loss", "train_loss", "train_acc", "steps", "batch_size"):
            assert got[k] == expected[k], k


def test_source_grid_from_the_cli(tmp_path):
    import yaml

    from plasticlab.cli import main

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(config(source_grid={"optim.lr": [-1.0]})))
    assert main(["transfer", str(path), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_source_points_keep_the_resolved_source():
    cfg = from_dict(config(source_grid={"optim.lr": [1e-3, 3e-3]}))
    for p in source_points(cfg):
        assert dataclasses.replace(p.cfg, optim=cfg.source.optim, seed=cfg.source.seed) == cfg.source
