"""Committed recipe outputs come out of today's code: ``plasticlab recipes reproduce`` and the
generated tables of ``docs/reproduction.md``.

The exactness tests read the committed files (``docs/reproduction/quickstart/``); they never hard-code
a number, so regenerating the outputs (``plasticlab recipes reproduce quickstart``) keeps them valid.
"""

import csv
import shutil
from pathlib import Path

import pytest

from plasticlab import recipes
from plasticlab.recipes import docs_tables, outputs
from plasticlab.registry import UserError
from plasticlab.sweep.spec import load_sweep
from tests.test_cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
QUICKSTART = DOCS / "reproduction" / "quickstart"
REGENERATE = "regenerate with `plasticlab recipes reproduce quickstart --executor process --workers 1`"


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def abrupt_none_seed0():
    """The sweep point of the quickstart recipe for seed 0, abrupt switches, no method: expanded from the
    recipe itself, so its config and run id are exactly the sweep's."""
    for p in load_sweep(recipes.sweep_of("quickstart")).points():
        method = p.config["method"]
        names = [m["name"] for m in (method if isinstance(method, list) else [method])]
        if p.seed == 0 and p.config["environment"]["kind"] == "abrupt" and names == ["none"]:
            return p
    raise AssertionError("the quickstart recipe has no seed-0 abrupt run without a method")


def test_one_quickstart_run_reproduces_the_committed_runs_csv_exactly(tmp_path):
    from plasticlab.api import run
    from plasticlab.store import read_metrics

    p = abrupt_none_seed0()
    committed = [r for r in read_csv(QUICKSTART / "runs.csv") if r["run"] == p.id]
    assert committed, f"run {p.id} is not in {QUICKSTART / 'runs.csv'}: the recipe changed; {REGENERATE}"
    ends = {r["task"]: r for r in read_metrics(run(p.config, out=tmp_path / "run"), "task_end")}
    value_columns = [c for c in committed[0] if c not in ("run", "seed", "task", *p.values)]
    assert {"train_acc", "dormant_fraction"} <= set(value_columns)
    assert sorted(int(r["task"]) for r in committed) == sorted(ends)
    expected = [(int(r["task"]), c, float(r[c]) if r[c] != "" else None) for r in committed for c in value_columns]
    got = [(t, c, ends[t].get(c)) for t, c, _ in expected]
    mismatch = [(e, g) for e, g in zip(expected, got, strict=True) if e != g]
    assert not mismatch, f"{len(mismatch)} values differ from the committed runs.csv (first: {mismatch[0]}); " \
                         f"if the change is intended, {REGENERATE}"


@pytest.mark.slow
def test_reproduce_quickstart_rewrites_the_committed_tables_byte_for_byte(tmp_path):
    [out] = recipes.reproduce(["quickstart"], work=tmp_path / "sweeps", docs=tmp_path / "docs", progress=False)
    assert out == tmp_path / "docs" / "reproduction" / "quickstart"
    for name in ("tables.csv", "paired.csv", "runs.csv"):
        assert (out / name).read_bytes() == (QUICKSTART / name).read_bytes(), f"{name} differs; {REGENERATE}"


def test_generated_blocks_of_the_doc_are_the_committed_outputs():
    doc = DOCS / "reproduction.md"
    text = doc.read_text()
    assert docs_tables.BLOCK.search(text), "docs/reproduction.md has no generated block"
    assert docs_tables.refresh(text, DOCS / "reproduction") == text, \
        "docs/reproduction.md's generated tables differ from docs/reproduction/ (edited by hand?); " \
        "refresh them with `plasticlab recipes reproduce --docs-only`"


def write_sweep_outputs(folder: Path) -> None:
    """Outputs of a constructed two-group sweep recipe, with numbers whose rendering is known."""
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text("name: toy\nmeasure: train_acc\n")
    head = "scope,group,environment.kind,measure,final_task,n,mean,ci_half,ci_low,ci_high\n"
    (folder / "tables.csv").write_text(
        head + "final,kind=abrupt,abrupt,train_acc,9,3,0.7,0.05,0.65,0.75\n"
        "final,kind=abrupt,abrupt,train_loss,9,3,1.2,0.5,0.7,1.7\n"
        "final,kind=task-sampling,task-sampling,train_acc,9,3,0.9,0.2,0.7,1.0\n"
        "last5,kind=abrupt,abrupt,train_acc,9,3,0.72,0.013,0.707,0.733\n"
        "last5,kind=task-sampling,task-sampling,train_acc,9,3,0.88,0.004,0.876,0.884\n")
    (folder / "paired.csv").write_text(
        "scope,group,environment.kind,baseline,measure,task,n,mean_diff,ci_low,ci_high,verdict\n"
        "final,kind=task-sampling,task-sampling,kind=abrupt,train_acc,9,3,0.2,-0.01,0.41,no difference at 95%\n"
        "last5,kind=task-sampling,task-sampling,kind=abrupt,train_acc,9,3,0.16,0.15,0.17,better at 95%\n")


def test_headline_table_renders_the_csv_numbers(tmp_path):
    write_sweep_outputs(tmp_path / "toy")
    lines = docs_tables.render("toy", "headline", tmp_path).splitlines()
    assert lines[0] == ("| kind | n | train_acc, final task | train_acc, last 5 tasks | Δ last 5 vs baseline [95% CI] "
                        "| Δ final vs baseline [95% CI] |")
    assert lines[2] == "| abrupt | 3 | 0.700 ± 0.050 | 0.720 ± 0.013 | baseline | baseline |"
    # 0.9 ± 0.2 is clipped at accuracy 1.0: the interval is shown
    assert lines[3] == "| task-sampling | 3 | 0.90 [0.70, 1.00] | 0.8800 ± 0.0040 | +0.160 [+0.150, +0.170] " \
                       "| +0.200 [-0.010, +0.410] |"
    assert "final task (9)" in lines[5] and "baseline (kind=abrupt)" in lines[5]


def test_refresh_replaces_only_block_bodies_and_checks_markers(tmp_path):
    write_sweep_outputs(tmp_path / "toy")
    (tmp_path / "tr").mkdir()
    (tmp_path / "tr" / "table.txt").write_text("target  none  reset\n15      0.50  0.60\n")
    text = ("# Doc\n\nprose\n<!-- generated: toy headline -->\nstale | 0.1\n<!-- end generated -->\nmore prose\n"
            "<!-- generated: tr table -->\n<!-- end generated -->\n")
    new = docs_tables.refresh(text, tmp_path)
    assert new.startswith("# Doc\n\nprose\n<!-- generated: toy headline -->\n| kind | n |")
    assert "stale" not in new and "more prose\n" in new
    table = "```\ntarget  none  reset\n15      0.50  0.60\n```\n"
    assert f"<!-- generated: tr table -->\n{table}<!-- end generated -->\n" in new
    assert docs_tables.refresh(new, tmp_path) == new
    with pytest.raises(UserError, match="end generated"):
        docs_tables.refresh("<!-- generated: toy headline -->\nno end\n", tmp_path)
    with pytest.raises(UserError, match="unknown kind 'plot'"):
        docs_tables.refresh("<!-- generated: toy plot -->\n<!-- end generated -->", tmp_path)
    with pytest.raises(UserError, match="missing"):
        docs_tables.refresh("<!-- generated: nope headline -->\n<!-- end generated -->", tmp_path)


def transfer_root(path: Path, value: str) -> Path:
    path.mkdir(parents=True)
    (path / "recipe.yaml").write_text("name: tr\n")
    (path / "table.txt").write_text(f"table {value}\n")
    (path / "results.csv").write_text(f"x\n{value}\n")
    return path


def test_write_outputs_keeps_user_files_drops_stale_ones_and_is_atomic(tmp_path):
    dest = tmp_path / "docs" / "reproduction" / "tr"
    dest.mkdir(parents=True)
    (dest / "analysis.py").write_text("print(1)\n")
    (dest / "analysis.png").write_bytes(b"png")
    (dest / "curve_old_measure.png").write_bytes(b"stale report plot")
    (dest / "table.txt").write_text("old\n")
    outputs.write_outputs(transfer_root(tmp_path / "a", "1"), dest, transfer=True)
    assert sorted(p.name for p in dest.iterdir()) == ["analysis.png", "analysis.py", "recipe.yaml", "results.csv",
                                                      "table.txt"]
    assert (dest / "table.txt").read_text() == "table 1\n" and (dest / "analysis.py").read_text() == "print(1)\n"
    broken = transfer_root(tmp_path / "b", "2")
    (broken / "results.csv").unlink()
    with pytest.raises(FileNotFoundError):
        outputs.write_outputs(broken, dest, transfer=True)
    assert (dest / "table.txt").read_text() == "table 1\n"  # the old folder stays whole
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tr"]  # no temporary folder left


def test_reproduce_checks_names_profile_and_docs_before_running(tmp_path):
    with pytest.raises(UserError, match="unknown recipe 'nope'"):
        recipes.reproduce(["quickstart", "nope"], work=tmp_path, docs=tmp_path)
    with pytest.raises(UserError, match="no profile 'huge'"):
        recipes.reproduce(["quickstart"], profile="huge", work=tmp_path, docs=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write to"):
        recipes.reproduce(["quickstart"], work=tmp_path, docs=tmp_path / "file")
    with pytest.raises(UserError, match="--all"):
        recipes.reproduce([], work=tmp_path, docs=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing ran
    assert outputs.output_dir("d", "quickstart", "paper") == Path("d/reproduction/quickstart-paper")


def test_cli_reproduce_errors_are_one_line_and_docs_only_refreshes(tmp_path):
    (tmp_path / "file").write_text("")
    for args, needle in ((["nope"], "unknown recipe 'nope'"), (["quickstart", "--profile", "huge"], "no profile"),
                         (["quickstart", "--docs", str(tmp_path / "file")], "cannot write to"),
                         ([], "--all"), (["--docs-only", "quickstart"], "runs nothing")):
        r = cli("recipes", "reproduce", *args, "--work", str(tmp_path / "work"), cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and needle in r.stderr, (args, r.stderr)
    docs = tmp_path / "docs"
    write_sweep_outputs(docs / "reproduction" / "toy")
    (docs / "reproduction.md").write_text("# R\n<!-- generated: toy headline -->\nold\n<!-- end generated -->\n")
    r = cli("recipes", "reproduce", "--docs-only", "--docs", str(docs), cwd=tmp_path)
    assert r.returncode == 0 and "updated" in r.stdout, r.stderr
    assert "| abrupt | 3 | 0.700 ± 0.050 |" in (docs / "reproduction.md").read_text()
    r = cli("recipes", "reproduce", "--docs-only", "--docs", str(docs), cwd=tmp_path)
    assert r.returncode == 0 and "already current" in r.stdout
    shutil.rmtree(docs / "reproduction" / "toy")
    r = cli("recipes", "reproduce", "--docs-only", "--docs", str(docs), cwd=tmp_path)
    assert r.returncode == 2 and "missing" in r.stderr and r.stderr.strip().count("\n") == 0
    assert cli("recipes", "show", "quickstart").returncode == 0
    assert cli("recipes", "list", "quickstart").returncode == 2  # argparse: unrecognized argument


def test_a_finished_transfer_recipe_is_reused(tmp_path, monkeypatch):
    import plasticlab.report.recipe
    import plasticlab.transfer

    calls = []
    monkeypatch.setattr(plasticlab.transfer, "run_transfer", lambda cfg, out: calls.append(out))
    monkeypatch.setattr(plasticlab.report.recipe, "transfer_analysis", lambda root: None)
    name = next(n for n in recipes.names() if "transfer" in recipes.sweep_of(n))
    recipes.run(name, out=tmp_path)
    (tmp_path / "provenance.json").write_text('{"status": "running"}')
    recipes.run(name, out=tmp_path)
    assert calls == [tmp_path, tmp_path]  # unfinished: run (run_transfer itself refuses a non-empty folder)
    (tmp_path / "provenance.json").write_text('{"status": "done"}')
    recipes.run(name, out=tmp_path)
    assert calls == [tmp_path, tmp_path] and (tmp_path / "recipe.yaml").is_file()


def test_headline_shows_a_dash_for_a_key_a_union_grid_point_lacks(tmp_path):
    write_sweep_outputs(tmp_path / "toy")
    path = tmp_path / "toy" / "tables.csv"
    path.write_text(path.read_text().replace("kind=abrupt,abrupt,", "kind=abrupt,,"))
    assert "| — | 3 | 0.700 ± 0.050 |" in docs_tables.render("toy", "headline", tmp_path)


def test_seeds_replace_the_profiles_seeds_for_a_replication(tmp_path, monkeypatch):
    import plasticlab.sweep

    ran = []
    monkeypatch.setattr(plasticlab.sweep, "run_sweep", lambda spec, out, **kw: ran.append((spec, out)))
    recipes.run("quickstart", out=tmp_path / "q", report=False, seeds=[100, 101])
    assert ran[0][0]["seeds"] == [100, 101] and ran[0][0]["grid"] == recipes.sweep_of("quickstart")["grid"]
    assert "seeds:\n- 100\n- 101" in (tmp_path / "q" / "recipe.yaml").read_text()
    transfer = next(n for n in recipes.names() if "transfer" in recipes.sweep_of(n))
    assert recipes.with_seeds(recipes.sweep_of(transfer), [5])["transfer"]["seeds"] == [5]
    assert recipes.seeds_label([100, 101, 102]) == "seeds-100-102" and recipes.seeds_label([1, 5]) == "seeds-1_5"
    for bad in ([], [1, 1], [-1]):
        with pytest.raises(UserError, match="recipe seeds"):
            recipes.with_seeds(recipes.sweep_of("quickstart"), bad)
    from plasticlab.cli import seed_list

    assert seed_list("100-103") == [100, 101, 102, 103] and seed_list("3,1") == [3, 1]


def test_final_values_block_shows_the_named_measures_at_the_final_task(tmp_path):
    write_sweep_outputs(tmp_path / "toy")
    text = docs_tables.render("toy", "final:train_acc,train_loss", tmp_path)
    assert "| kind | n | train_acc | train_loss |" in text and "| abrupt | 3 | 0.700 ± 0.050 | 1.20 ± 0.50 |" in text
    assert "| task-sampling | 3 | 0.90 [0.70, 1.00] | — |" in text
    with pytest.raises(UserError, match="no final-task rows of nope"):
        docs_tables.render("toy", "final:train_acc,nope", tmp_path)


def test_table_block_can_keep_the_first_tables_of_a_transfer_table(tmp_path):
    (tmp_path / "tr").mkdir()
    (tmp_path / "tr" / "table.txt").write_text("first\nrow\n\nsecond\n\nthird\n")
    assert docs_tables.render("tr", "table:2", tmp_path) == "```\nfirst\nrow\n\nsecond\n```\n"
    assert docs_tables.render("tr", "table", tmp_path).endswith("third\n```\n")
    (tmp_path / "tr" / "correlation.txt").write_text("r = 0.5\n")
    assert docs_tables.render("tr", "correlation", tmp_path) == "```\nr = 0.5\n```\n"
