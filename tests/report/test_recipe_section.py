import csv
import json
import math

import numpy as np

from plasticlab.report.recipe import correlate, fisher_ci, pearson, ranks, transfer_analysis


def test_pearson_known_values():
    assert math.isclose(pearson([1, 2, 3, 4], [2, 4, 6, 8]), 1.0)
    assert math.isclose(pearson([1, 2, 3, 4], [8, 6, 4, 2]), -1.0)
    # hand computed: x=[1,2,3], y=[1,3,2] → r = 0.5
    assert math.isclose(pearson([1, 2, 3], [1, 3, 2]), 0.5)
    assert pearson([1, 2], [3, 4]) is None  # fewer than 3 points
    assert pearson([1, 1, 1], [1, 2, 3]) is None  # no variance


def test_ranks_average_ties():
    assert ranks([10, 30, 20]) == [1, 3, 2]
    assert ranks([5, 5, 1, 7]) == [2.5, 2.5, 1, 4]


def test_fisher_ci_hand_computed():
    # r = 0.5, n = 28: z = atanh(0.5) = 0.5493, h = 1.96/√25 = 0.3920 → tanh(0.1573), tanh(0.9413)
    lo, hi = fisher_ci(0.5, 28)
    assert math.isclose(lo, 0.156028, rel_tol=1e-5) and math.isclose(hi, 0.735818, rel_tol=1e-5)
    # Spearman variance (1 + ρ²/2)/(n − 3): ρ = −0.3, n = 12
    lo, hi = fisher_ci(-0.3, 12, 1 + 0.09 / 2)
    assert math.isclose(lo, -0.751929, rel_tol=1e-5) and math.isclose(hi, 0.343751, rel_tol=1e-5)
    assert fisher_ci(0.5, 3) is None and fisher_ci(None, 10) is None
    assert fisher_ci(1.0, 10) == (1.0, 1.0)


def test_correlate_known_r_and_ci_coverage():
    """Bivariate normal with ρ = 0.6, n = 10, 2000 draws: atanh r averages atanh ρ + ρ/(2(n−1)) (Fisher's
    bias) and the 95% CIs cover the true Pearson ρ (and Spearman's population value (6/π)·asin(ρ/2))
    about 95% of the time (with variance 1/n instead of 1/(n−3) coverage would be ≈ 0.90)."""
    rho, n, reps = 0.6, 10, 2000
    rng = np.random.default_rng(0)
    rho_s = 6 / math.pi * math.asin(rho / 2)
    hit_r = hit_s = 0
    rs = []
    for _ in range(reps):
        z = rng.standard_normal((n, 2))
        x, y = z[:, 0], rho * z[:, 0] + math.sqrt(1 - rho * rho) * z[:, 1]
        c = correlate(x.tolist(), y.tolist())
        rs.append(c.r)
        hit_r += c.r_ci[0] <= rho <= c.r_ci[1]
        hit_s += c.rho_ci[0] <= rho_s <= c.rho_ci[1]
    assert abs(np.mean(np.arctanh(rs)) - math.atanh(rho) - rho / (2 * (n - 1))) < 0.01
    assert abs(hit_r / reps - 0.95) < 0.015, hit_r / reps
    assert abs(hit_s / reps - 0.95) < 0.012, hit_s / reps  # with variance 1/(n−3): 0.935


def test_within_group_correlation_removes_group_shifts():
    # inside each seed y falls with x (r = −1); the seeds' offsets make the pooled r positive
    xs, ys, seeds = [1, 2, 3, 11, 12, 13], [13, 12, 11, 23, 22, 21], [0, 0, 0, 1, 1, 1]
    pooled, within = correlate(xs, ys), correlate(xs, ys, seeds)
    assert pooled.r > 0.9
    assert math.isclose(within.r, -1.0) and math.isclose(within.rho, -1.0)
    xs2, ys2 = [1, 2, 3, 4, 11, 12, 13, 14], [1, 3, 2, 4, 11, 14, 12, 13]
    c = correlate(xs2, ys2, [0] * 4 + [1] * 4)
    assert c.r_ci == fisher_ci(c.r, 8 - 1)  # one group indicator controlled: n − 1


def test_transfer_analysis_writes_the_correlation(tmp_path):
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    accs = {20: [0.5, 0.4, 0.45, 0.3, 0.2, 0.25], None: [0.1, 0.3, 0.2, 0.4, 0.6, 0.5]}
    with open(tmp_path / "results.jsonl", "w") as f:
        for n, ys in accs.items():
            for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
                row = {"seed": i % 2, "grid": {"optim.lr": i}, "intervention": "none", "samples_per_class": n,
                       "test_acc": y, "pretrained": {"input_sensitivity": x}}
                f.write(json.dumps(row) + "\n")
    (tmp_path / "recipe.yaml").write_text(
        "analysis: {correlation: {x: pretrained.input_sensitivity, y: test_acc}}\n")
    written = transfer_analysis(tmp_path)
    assert [p.name for p in written] == ["correlation.txt", "correlation.csv", "correlation.png"]
    with open(tmp_path / "correlation.csv") as f:
        got = list(csv.DictReader(f))
    assert [(g["models"], g["samples_per_class"]) for g in got] == [
        ("pooled", "20"), ("pooled", ""), ("within seed", "20"), ("within seed", "")]
    for g, ys in zip(got[:2], accs.values(), strict=True):
        c = correlate(xs, ys)
        assert math.isclose(float(g["pearson_r"]), c.r) and math.isclose(float(g["spearman_lo"]), c.rho_ci[0])
        assert int(g["n"]) == 6 and g["x"] == "pretrained.input_sensitivity"
    assert float(got[0]["pearson_r"]) < -0.8 and float(got[1]["pearson_r"]) > 0.8
    within = correlate(xs, accs[20], [i % 2 for i in range(6)])
    assert math.isclose(float(got[2]["pearson_r"]), within.r)
    text = (tmp_path / "correlation.txt").read_text()
    assert "within seed" in text and f"{c.r:+.3f}" in text
    (tmp_path / "recipe.yaml").write_text("claim: x\n")
    assert transfer_analysis(tmp_path) == []


def test_sweep_recipe_correlation_block(tmp_path):
    from types import SimpleNamespace

    from plasticlab.report.recipe import recipe_blocks

    (tmp_path / "recipe.yaml").write_text(
        "name: r\nprofile: quick\nanalysis: {correlation: {x: input_sensitivity@0, y: test_acc@1}}\n")
    xs, ys = [1.0, 2.0, 3.0, 4.0, 5.0], [0.2, 0.1, 0.4, 0.3, 0.5]
    runs = [SimpleNamespace(id=f"r{i}", task_ends={0: {"input_sensitivity": x}, 1: {"test_acc": y}})
            for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    blocks = recipe_blocks(SimpleNamespace(path=tmp_path, runs=runs), tmp_path)
    table = next(b for b in blocks if b[0] == "table")
    c = correlate(xs, ys)
    assert table[2] == [["input_sensitivity@0", "test_acc@1", "5", f"{c.r:+.3f} [{c.r_ci[0]:+.3f}, {c.r_ci[1]:+.3f}]",
                         f"{c.rho:+.3f} [{c.rho_ci[0]:+.3f}, {c.rho_ci[1]:+.3f}]"]]
    assert math.isclose(c.r, 0.8) and (tmp_path / "correlation.png").is_file()
