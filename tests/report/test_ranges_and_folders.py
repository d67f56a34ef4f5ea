"""Report: folders that are not runs are skipped, CI ends stay in the measure's range, and the
mean-over-tasks table has no task column."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from plasticlab.registry import UserError
from plasticlab.report import make_report, plots
from plasticlab.report.runs import load
from plasticlab.report.stats import mean_ci, measure_range
from plasticlab.report.tables import fmt, groups
from tests.report.test_make import FULL, read_csv, write_run, write_sweep


def write_transfer(path):
    """A ``plasticlab transfer`` output: its own config (other sections), kind transfer, a pre-training run."""
    path.mkdir(parents=True)
    config = {"source": {"seed": 0, "tasks": {"family": "random-labels", "count": 2}, "optim": {"lr": 0.5}},
              "target": {"samples_per_class": [1, 10], "head": "auto"}, "seeds": [0, 1],
              "interventions": [{"name": "none"}, {"name": "full-reset"}]}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "provenance.json").write_text(json.dumps({"status": "done", "kind": "transfer"}))
    (path / "results.jsonl").write_text(json.dumps({"seed": 0, "intervention": "none", "test_acc": 0.5}) + "\n")
    write_run(path / "pretrain" / "seed0", seed=0, lr=0.5, accs=[0.9, 0.8])


def test_a_folder_with_a_transfer_output_reports_only_its_runs(tmp_path):
    root = tmp_path / "results"
    write_run(root / "a", seed=0, lr=0.1, accs=[0.9, 0.8])
    write_run(root / "b", seed=0, lr=0.01, accs=[0.9, 0.7])
    write_transfer(root / "transfer")
    col = load(root)
    assert [r.id for r in col.runs] == ["a", "b"] and col.keys == ["optim.lr"]
    md = (make_report(root) / "report.md").read_text().replace(str(root), "ROOT")
    assert not any(word in md for word in ("source", "samples_per_class", "pretrain", "transfer"))
    header = next(line for line in md.splitlines() if line.startswith("| lr "))
    assert header.split("|").count(" lr ") == 1  # one group column, once

    with pytest.raises(UserError, match=r"is a transfer output, not a run .*results.csv") as e:
        make_report(root / "transfer")
    assert "\n" not in str(e.value)


def test_measure_ranges():
    for name in ("train_acc", "test_acc", "test_bleu2", "train_exact", "dormant_fraction", "frozen_fraction",
                 "grad_sparsity"):
        assert measure_range(name) == (0.0, 1.0), name
    for name in ("train_loss", "grad_norm", "weight_norm", "effective_rank", "srank", "stable_rank",
                 "input_sensitivity", "grad_frozen", "grad_all", "feature_norm", "param_distance"):
        assert measure_range(name) == (0.0, math.inf), name
    assert measure_range("something_else") == (-math.inf, math.inf)


def test_ci_ends_are_clipped_to_the_measure_range(tmp_path):
    e = mean_ci([0.01, 0.3, 0.02], bounds=measure_range("train_loss"))
    assert e.mean - e.half < 0 and e.low == 0.0 and e.high == pytest.approx(e.mean + e.half) and e.clipped
    assert fmt(e).startswith(f"{e.mean:.2f} [0.00, ")  # never a negative end
    acc = mean_ci([0.99, 0.7, 0.98], bounds=measure_range("train_acc"))
    assert acc.high == 1.0 and acc.low == pytest.approx(acc.mean - acc.half)
    free = mean_ci([0.01, 0.3, 0.02])
    assert free.low < 0 and not free.clipped and "±" in fmt(free)

    # train_loss = 1 - acc: near 0 for these runs, so its t-interval over 3 seeds reaches below 0
    runs = {(0.1, 0): [0.99, 0.99], (0.1, 1): [0.99, 0.7], (0.1, 2): [0.99, 0.98]}
    root = write_sweep(tmp_path / "sw", runs)
    out = make_report(root)
    rows = [r for r in read_csv(out / "tables.csv") if r["ci_low"] != ""]
    assert rows and all(float(r["ci_low"]) >= 0 for r in rows)
    assert all(float(r["ci_high"]) <= 1 for r in rows if r["measure"].endswith("_acc"))
    loss = next(r for r in rows if r["scope"] == "final" and r["measure"] == "train_loss")
    assert float(loss["mean"]) - float(loss["ci_half"]) < 0 == float(loss["ci_low"])
    g = groups(load(root))[0]
    _, _, lo, hi = plots._series(g, "train_loss")
    assert min(lo) == 0.0 and max(plots._series(g, "train_acc")[3]) == 1.0  # the bands drawn


def test_mean_over_tasks_table_has_no_task_column(tmp_path):
    md = (make_report(write_sweep(tmp_path / "sw", FULL)) / "report.md").read_text()
    final = md[md.index("## Final task"):md.index("## Mean over tasks")].splitlines()
    mean = md[md.index("## Mean over tasks"):md.index("## Diagnostics")].splitlines()
    assert final[2].startswith("| lr | task | n | train_acc |")
    assert mean[2].startswith("| lr | n | train_acc |") and not any("| task" in line for line in mean)
    assert mean[4].startswith("| 0.1 | 3 | 0.7333 ± 0 |")  # per-run means over tasks: 2.2/3 each
