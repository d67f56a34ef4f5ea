"""Mean ± 95% CI cells and the tables' layout."""

import math

from plasticlab.transfer.table import cell, format_tables, mean_ci


def test_mean_ci_known_answer():
    m, h = mean_ci([1.0, 2.0, 3.0])  # sd 1, n 3: h = t(2)·1/√3
    assert m == 2.0
    assert math.isclose(h, 4.303 / math.sqrt(3))
    assert mean_ci([0.5]) == (0.5, None)
    assert math.isnan(mean_ci([None, float("nan")])[0])
    assert cell([0.25]) == "0.250"


def test_tables_have_interventions_by_n_and_paired_differences():
    rows = [{"seed": s, "intervention": iv, "samples_per_class": n, "test_acc": acc + 0.1 * s,
             "changed_fraction": 0.0, "pretrained": None, "intervened": {}, "finetuned": None}
            for s in (0, 1) for iv, acc in (("none", 0.5), ("reset-frozen", 0.6)) for n in (5, None)]
    text = format_tables(rows)
    assert "N=5" in text and "N=all" in text
    diff = text.split("difference to none")[1].splitlines()
    assert any(line.startswith("reset-frozen") and "0.100 ± 0.000" in line for line in diff)


def test_diagnostics_table_shows_frozen_and_dead_after_pretraining():
    rows = [{"seed": s, "intervention": "none", "samples_per_class": 5, "test_acc": 0.5, "changed_fraction": 0.0,
             "pretrained": {"frozen_fraction": 0.25 + 0.1 * s, "dead_fraction": 0.1 * s}, "intervened": {},
             "finetuned": None} for s in (0, 1)]
    lines = format_tables(rows).splitlines()
    head = next(line for line in lines if line.startswith("intervention") and "frozen_pre" in line).split()
    body = lines[lines.index(next(line for line in lines if "frozen_pre" in line)) + 2]
    cells = [c.strip() for c in body.split("  ") if c.strip()]
    assert head[5:7] == ["frozen_pre", "dead_pre"]
    # two seeds: mean ± t(1)·sd/√2 with sd = 0.1/√2 → h = 12.706·0.05 = 0.635
    assert cells[5:7] == ["0.300 ± 0.635", "0.050 ± 0.635"]
