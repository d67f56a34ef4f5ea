"""CLI end to end, through a subprocess as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

from tests.cli_server import SHARED

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """``python -m plasticlab ARGS`` in its own process (forked from the suite's command server,
    ``tests/cli_server.py``), in ``cwd`` (default: the test's working directory)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    rc, out, err = SHARED.run(list(args), cwd or os.getcwd(), env, timeout=300)
    assert rc != "timeout", f"plasticlab {' '.join(args)}: timed out"
    return subprocess.CompletedProcess(["plasticlab", *args], rc, out, err)


def test_run_end_to_end(tmp_path, tiny):
    sets = [x for s in tiny for x in ("--set", s)]
    r = cli("run", *sets, "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "run done" in r.stdout and "train_acc" in r.stdout
    for f in ("config.yaml", "provenance.json", "metrics.jsonl", "checkpoints/latest.pt"):
        assert (tmp_path / "run" / f).exists()


def test_config_error_exits_2_and_writes_nothing(tmp_path):
    r = cli("run", "--set", "optim.lr=fast", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "optim.lr" in r.stderr
    assert not (tmp_path / "x").exists()


def test_missing_dataset_exits_2_with_fetch_hint(tmp_path):
    r = cli("run", "--set", "data.name=mnist", "--set", f"data.root={tmp_path}", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "plasticlab data fetch mnist" in line and str(tmp_path) in line
    assert not (tmp_path / "x").exists()


def test_bad_config_path_and_non_empty_out(tmp_path):
    r = cli("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "config file not found" in r.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    r = cli("run", "--out", str(tmp_path / "full"))
    assert r.returncode == 2 and "not empty" in r.stderr


def test_dry_run_prints_schedule():
    r = cli("run", "--dry-run", "--set", "tasks.count=2", "--set", "environment.kind=task-sampling")
    assert r.returncode == 0
    assert "transition" in r.stdout and "total steps" in r.stdout


def test_data_list():
    r = cli("data", "list")
    assert r.returncode == 0 and "digits" in r.stdout and "embedded" in r.stdout


def test_sweep_report_diagnose_and_recipes_end_to_end(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "base: {tasks: {family: random-labels, count: 2}, environment: {epochs_per_task: 1},\n"
        "       model: {name: mlp, hidden: [16]}, diagnostics: {probe_size: 64}}\n"
        "grid: {environment.kind: [abrupt, task-sampling]}\n"
        "seeds: [0]\n"
    )
    r = cli("sweep", str(sweep), "--out", str(tmp_path / "sw"), "--report", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sw" / "report" / "report.html").exists() and "report:" in r.stdout
    table = (tmp_path / "sw" / "status.csv").read_text()
    assert table.count("done") == 2
    again = cli("sweep", str(sweep), "--out", str(tmp_path / "sw"), "--quiet")
    assert again.returncode == 0 and "2 already finished, 0 to run" in again.stderr
    run_dir = next((tmp_path / "sw" / "runs").iterdir())
    d = cli("diagnose", str(run_dir))
    assert d.returncode == 0 and "frozen_fraction" in d.stdout and (run_dir / "diagnose.json").exists()
    rep = cli("report", str(run_dir), "--out", str(tmp_path / "one"))
    assert rep.returncode == 0 and (tmp_path / "one" / "report.md").exists()
    lst = cli("recipes", "list")
    assert lst.returncode == 0 and "quickstart" in lst.stdout and "zilly-transfer-size" in lst.stdout
    show = cli("recipes", "show", "quickstart")
    assert show.returncode == 0 and "profiles:" in show.stdout


def test_help_of_every_command_exits_0():
    from plasticlab.cli import parser

    sub = next(a for a in parser()._actions if a.dest == "command")
    for command in [None, *sub.choices]:
        r = cli(*([command] if command else []), "--help")
        assert r.returncode == 0 and "usage: plasticlab" in r.stdout, (command, r.stderr)


def test_resume_with_a_changing_set_or_with_out_is_one_line_exit_2(tmp_path, tiny):
    d = tmp_path / "r"
    assert cli("run", *[x for s in tiny + ["tasks.count=1"] for x in ("--set", s)], "--out", str(d)).returncode == 0
    before = (d / "metrics.jsonl").read_text()
    for args in (["--resume", str(d), "--set", "optim.lr=0.5"], ["--resume", str(d), "--out", str(d)]):
        r = cli("run", *args)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "optim.lr" in cli("run", "--resume", str(d), "--set", "optim.lr=0.5").stderr
    assert (d / "metrics.jsonl").read_text() == before


def test_paths_of_the_wrong_kind_are_one_line_exit_2(tmp_path, tiny):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    run = tmp_path / "run"
    assert cli("run", *[x for s in tiny + ["tasks.count=1"] for x in ("--set", s)], "--out", str(run)).returncode == 0
    sweep = tmp_path / "sw.yaml"
    sweep.write_text("base: {tasks: {count: 1}}\ngrid: {optim.lr: [0.001]}\n")
    for args in (["run", "--out", str(a_file)], ["sweep", str(sweep), "--out", str(a_file)],
                 ["diagnose", str(run), "--out", str(tmp_path)]):
        r = cli(*args)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, (args, r.stderr)
    assert a_file.read_text() == "x"


def imports_no_torch(call: str) -> None:
    """Run ``call`` (a statement using ``plasticlab.cli``) in a fresh interpreter; torch must stay unimported."""
    code = ("import sys, contextlib, io\nfrom plasticlab.cli import main, parser\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
            f"    {call}\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr


def test_help_imports_no_torch():
    """``--help`` of every command is instant: building the parser imports no torch (measured 0.06 s)."""
    imports_no_torch("parser().parse_args(['run', '--help'])")


def test_output_closed_early_ends_quietly():
    """``plasticlab recipes list | head -1``: the reader goes away; no BrokenPipeError traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written (deterministic)
    r = subprocess.run([sys.executable, "-m", "plasticlab", "recipes", "list"], stdout=write, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=120)
    os.close(write)
    assert r.stderr == "" and r.returncode == 141, r.stderr
    shell = subprocess.run(f"'{sys.executable}' -m plasticlab recipes list | head -1", shell=True, capture_output=True,
                           text=True, env=env, timeout=120)
    assert shell.stdout.count("\n") == 1 and shell.stderr == "", shell.stderr


def test_version_imports_no_torch():
    imports_no_torch("main(['--version']); assert out.getvalue().startswith('plasticlab ')")


def test_data_list_has_a_header():
    first = cli("data", "list").stdout.splitlines()[0].split()
    assert first[:3] == ["name", "status", "path"]


def test_every_sweep_flag_has_help():
    from plasticlab.cli import parser

    sub = next(a for a in parser()._actions if a.dest == "command")
    sweep = sub.choices["sweep"]
    missing = [a.option_strings or a.dest for a in sweep._actions if not a.help]
    assert not missing


def test_run_off_a_terminal_prints_one_line_per_task(tmp_path, tiny):
    r = cli("run", *[x for s in tiny for x in ("--set", s)], "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("task ")]
    assert [line.split()[:3] for line in lines] == [["task", f"{t}/3", "done"] for t in (1, 2, 3)]
    step, total = lines[-1].split()[4].split("/")
    assert step == total and "train_acc" in lines[0]


def test_sweep_with_a_missing_dataset_is_one_line_and_starts_no_run(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"base: {{data: {{name: mnist, root: {tmp_path / 'data'}}}, tasks: {{count: 2}}}}\n"
                     "grid: {optim.lr: [0.1, 0.01]}\nseeds: [0, 1, 2]\n")
    r = cli("sweep", str(sweep), "--out", str(tmp_path / "sw"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "6 of 6 runs cannot start" in r.stderr and "plasticlab data fetch mnist" in r.stderr
    assert not (tmp_path / "sw").exists()
