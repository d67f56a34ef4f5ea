"""A sweep checks what its runs need before starting any; its output on and off a terminal."""

from __future__ import annotations

import io
import json
import socket
import sys

import pytest

from plasticlab.registry import UserError
from plasticlab.sweep import driver, run_sweep
from plasticlab.sweep.spec import load_sweep
from tests.sweep import sweep_fakes as fakes

RUNNER = "tests.sweep.sweep_fakes:fake_run"
BASE = {"tasks": {"family": "permuted-pixels", "count": 3}, "model": {"name": "mlp", "hidden": [8]}}


def sweep(base=None, lrs=(0.1, 0.01), seeds=(0, 1), **grid) -> dict:
    return {"base": base or BASE, "grid": {"optim.lr": list(lrs), **grid}, "seeds": list(seeds)}


def one_line_error(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


def test_missing_dataset_stops_the_sweep_before_any_run(tmp_path):
    base = {**BASE, "data": {"name": "mnist", "root": str(tmp_path / "data")}}
    with pytest.raises(UserError) as e:
        run_sweep(sweep(base), out=tmp_path / "sw", runner=RUNNER, progress=False)
    text = one_line_error(e)
    assert text.startswith("sweep: 4 of 4 runs cannot start") and "dataset 'mnist' not found" in text
    assert "plasticlab data fetch mnist --root" in text and str(tmp_path / "data") in text
    assert text.count("not found") == 1  # the same problem of every run is said once
    assert not (tmp_path / "sw").exists()  # no sweep directory, no run directory


def test_missing_packages_are_named_with_their_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed (find_spec → None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    base = {"tasks": {"family": "random-seq2seq", "count": 2}, "model": {"name": "t5", "d_model": 16, "heads": 2,
                                                                       "d_ff": 16}}
    spec = sweep(base, seeds=[0], **{"engine.loggers": [[], ["wandb"]]})
    with pytest.raises(UserError) as e:
        run_sweep(spec, out=tmp_path / "sw", runner=RUNNER, progress=False)
    text = one_line_error(e)
    assert "4 of 4 runs cannot start" in text
    assert "model t5 needs HuggingFace transformers: pip install 'plasticlab[language]' [4 runs]" in text
    assert "W&B logging needs wandb: pip install 'plasticlab[loggers]' [2 runs]" in text
    assert not (tmp_path / "sw").exists()


def test_cuda_device_without_cuda_stops_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "cuda_available", lambda: False)
    base = {**BASE, "engine": {"device": "cuda"}}
    with pytest.raises(UserError, match=r"engine.device: cuda, but this machine has no CUDA device") as e:
        run_sweep(sweep(base), out=tmp_path / "sw", runner=RUNNER, progress=False)
    one_line_error(e)
    assert not (tmp_path / "sw").exists()
    with pytest.raises(UserError, match=r"--gpus-per-run 1, but this machine has no GPU"):
        run_sweep(sweep(), executor="ray", gpus_per_run=1, out=tmp_path / "sw", runner=RUNNER, progress=False)


def test_checks_skip_finished_runs_and_what_another_machine_provides(tmp_path, monkeypatch):
    assert driver.where("process", None) == {"data", "packages", "device"}
    assert driver.where("ray", "10.0.0.1:6379") == set()  # a cluster's nodes have their own files and devices
    assert driver.where("slurm", None, {}) == {"data", "packages"}
    root = run_sweep(sweep(), out=tmp_path / "sw", runner=RUNNER, progress=False)
    monkeypatch.setattr(driver, "cuda_available", lambda: False)
    points = load_sweep(sweep({**BASE, "engine": {"device": "cuda"}})).points()
    driver.preflight(points, len(points), set())  # nothing to check: no error
    driver.preflight([], len(points), {"device"})  # nothing left to run: no error
    assert run_sweep(sweep(), out=root, runner=RUNNER, progress=False) == root


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ray_cluster_is_one_line(tmp_path, monkeypatch):
    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(UserError, match=rf"--address {address}: cannot reach the Ray cluster") as e:
        run_sweep(sweep(), executor="ray", address=address, out=tmp_path / "sw", runner=RUNNER, progress=False)
    one_line_error(e)
    assert not (tmp_path / "sw").exists()
    with pytest.raises(UserError, match="expected auto or HOST:PORT"):
        run_sweep(sweep(), executor="ray", address="nohost", out=tmp_path / "sw", runner=RUNNER, progress=False)

    def refused(*_args, **_kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379\nsecond line")

    monkeypatch.setattr(driver, "make_executor", refused)  # what ray.init raises once it gives up
    with pytest.raises(UserError) as e:
        run_sweep(sweep(), executor="ray", address="auto", out=tmp_path / "sw2", runner=RUNNER, progress=False)
    assert one_line_error(e) == ("--executor ray --address auto: cannot connect: "
                                 "ConnectionError: Failed to connect to Ray cluster at 10.0.0.1:6379")
    assert not (tmp_path / "sw2").exists()  # a sweep that never started leaves no directory


def test_off_a_terminal_one_line_per_run_and_a_summary_table(tmp_path, capsys):
    root = run_sweep(sweep(lrs=[0.1, fakes.FAIL, fakes.DIVERGE], seeds=[0]), out=tmp_path / "sw", runner=RUNNER)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err  # no bar, no cursor movement
    lines = [line.split() for line in err.splitlines() if line.startswith("[")]  # [k/N] status seconds s id
    ids = [e["id"] for e in map(json.loads, (root / "runs.jsonl").read_text().splitlines())]
    assert [x[:2] for x in lines] == [["[1/3]", "done"], ["[2/3]", "failed"], ["[3/3]", "diverged"]]
    assert [x[4] for x in lines] == ids and all(float(x[2]) >= 0 and x[3] == "s" for x in lines)
    assert lines[1][5:] == ["log:", str(root / "logs" / f"{ids[1]}.log")]
    tail = err[err.index("this sweep took"):].splitlines()
    assert tail[1].split() == ["status", "runs"]
    assert [row.split() for row in tail[2:5]] == [["diverged", "1"], ["done", "1"], ["failed", "1"]]
    assert tail[5] == "failed runs (1):" and "RuntimeError: boom at lr=7.0 — log: " in tail[6]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_running_runs_show_full_distinguishing_labels(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setattr(driver, "REFRESH_S", 0.05)
    monkeypatch.setattr(fakes, "SLEEP_S", 0.3)
    monkeypatch.setenv("COLUMNS", "200")
    wide = [[8] * 8, [8] * 7 + [16]]  # ids differ only after their first 24 characters
    spec = sweep(lrs=[0.1], seeds=[0], **{"model.hidden": wide})
    run_sweep(spec, out=tmp_path / "sw", runner=RUNNER)
    out = sys.stderr.getvalue()
    assert "hidden=[8,8,8,8,8,8,8,8] s0  (task" in out and "hidden=[8,8,8,8,8,8,8,16] s0  (task" in out
    assert "[1/2]" not in out  # the live bar, not the batch-log lines


def test_run_labels_and_fit():
    points = load_sweep(sweep(lrs=[0.1, 0.01], seeds=[0, 1], **{"optim.name": ["adam"]})).points()
    labels = driver.run_labels(points)
    assert sorted(labels.values()) == ["lr=0.01 s0", "lr=0.01 s1", "lr=0.1 s0", "lr=0.1 s1"]  # name is fixed
    both = load_sweep({"base": BASE, "grid": {"optim.lr": [0.1, 0.2], "method": [{"name": "l2", "coef": 0.1},
                                                                            {"name": "none"}]}}).points()
    assert "lr=0.1 method=l2(coef=0.1) s0" in driver.run_labels(both).values()
    assert driver.fit("abcdefghij", 6) == "…fghij" and driver.fit("abc", 6) == "abc"


def test_a_cluster_refusing_the_token_is_one_line_and_leaves_no_sweep_directory(tmp_path, monkeypatch):
    from plasticlab.registry import UserError
    from plasticlab.sweep import driver

    def refuse(name, **options):
        raise RuntimeError("UNAUTHENTICATED: Invalid or missing authentication token\n  ... 70 more lines")

    monkeypatch.setattr(driver, "make_executor", refuse)
    spec = {"base": {"tasks": {"count": 1}, "environment": {"epochs_per_task": 1}}, "grid": {"optim.lr": [1e-3]}}
    with pytest.raises(UserError) as e:
        driver.run_sweep(spec, executor="ray", address="auto", out=tmp_path / "sw", progress=False)
    assert "\n" not in str(e.value) and "RAY_AUTH_TOKEN" in str(e.value) and "cannot connect" in str(e.value)
    assert not (tmp_path / "sw").exists()
