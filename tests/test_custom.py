"""Bring your own model and task stream: ``model: {name: custom}``, ``tasks: {family: custom}`` and
the Python API's ``model=`` / ``tasks=`` (docs/custom.md). The user code is tests/user_code.py and
examples/label_noise.py, which never import plasticlab."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import plasticlab
from examples.label_noise import LabelNoise, make_model
from plasticlab import registry
from plasticlab.api import resolve
from plasticlab.engine import loop
from plasticlab.registry import UserError
from plasticlab.store import read_json, read_metrics
from tests import user_code
from tests.user_code import FirstHalf, SquaredError, make_mlp

ROOT = Path(__file__).resolve().parents[1]
BASE = ["tasks.count=2", "environment.epochs_per_task=1", "optim.batch_size=100", "diagnostics.probe_size=128",
        "engine.device=cpu"]
MLP = ["model.name=custom", "model.factory=tests.user_code:make_mlp"]
UNIT_METHODS = ("redo", "cbp", "reset-frozen")
DIAGNOSTICS = ("dormant_fraction", "frozen_fraction", "effective_rank")


def cli(*args: str, cwd: Path = ROOT, script: bool = False) -> subprocess.CompletedProcess:
    """``python -m plasticlab ARGS`` with PYTHONPATH = the repository, or (``script``) the console
    script without PYTHONPATH, whose sys.path does not hold the working directory."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    if script:
        cmd = [str(Path(sys.executable).parent / "plasticlab")]
    else:
        cmd, env["PYTHONPATH"] = [sys.executable, "-m", "plasticlab"], str(ROOT)
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def busy(name: str) -> list[str]:
    """``--set`` overrides that select method ``name`` with options under which it acts in a tiny run."""
    return [f"method.name={name}"] + [f"method.{k}={v}" for k, v in registry.METHODS[name].busy.items()]


# ---------------------------------------------------------------- the "done when" of issue 16


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The plain user MLP without a method: rows to compare the methods' runs with."""
    out = tmp_path_factory.mktemp("custom") / "none"
    return read_metrics(plasticlab.run(None, overrides=BASE, out=out, model=make_mlp), "task_end")


def test_plain_module_gets_an_automatic_unit_map():
    s = loop.setup(resolve(None, BASE + MLP))
    assert [(layer.name, layer.count) for layer in s.unit_map] == [("fc1", 16), ("fc2", 16)]
    assert not hasattr(s.model, "unit_layers")


def test_init_scales_are_pytorchs_default_measured_or_given():
    over = BASE + ["model.name=custom", "model.factory=tests.user_code:make_normal_mlp"]

    def fc1_fc2(*more):
        layers = loop.setup(resolve(None, over + list(more))).unit_map
        return [(layer.in_weight.init, layer.in_weight.scale) for layer in layers]

    assert fc1_fc2() == [("uniform", 1 / 8), ("uniform", pytest.approx(1 / math.sqrt(32)))]  # fan_in 64, 32
    (k1, s1), (k2, s2) = fc1_fc2("model.init=measured")
    assert (k1, k2) == ("normal", "normal")
    assert s1 == pytest.approx(0.02, rel=0.05) and s2 == pytest.approx(0.02, rel=0.1)  # 2048 and 1024 draws
    assert fc1_fc2("model.init={fc1.weight: [normal, 0.5]}") == [("normal", 0.5),
                                                                  ("uniform", pytest.approx(1 / math.sqrt(32)))]
    assert fc1_fc2("model.kwargs.declare=true") == [("normal", 0.02), ("normal", 0.02)]  # the module's own unit_init
    for bad in ("sideways", "{fc1.weight: [triangular, 1]}", "{fc1.weight: [normal, -1]}"):
        with pytest.raises(UserError, match="model.init"):
            resolve(None, over + [f"model.init={bad}"])


@pytest.mark.parametrize("method", UNIT_METHODS)
def test_unit_methods_and_diagnostics_on_a_plain_module_from_python(tmp_path, method, baseline):
    run_dir = plasticlab.run(None, overrides=BASE + busy(method), out=tmp_path / "r", model=make_mlp)
    rows = read_metrics(run_dir, "task_end")
    assert [r["task"] for r in rows] == [0, 1]
    for r in rows:
        for k in DIAGNOSTICS:
            assert isinstance(r[k], float) and math.isfinite(r[k]), (k, r[k])
        assert 0 < r["effective_rank"] <= 16 and set(r["layers"]) == {"fc1", "fc2"}
    assert rows[-1]["train_loss"] != baseline[-1]["train_loss"]  # the method changed the run
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["factory"] == "tests.user_code:make_mlp"


def test_unit_methods_on_a_plain_module_from_the_cli_equal_python(tmp_path):
    options = {m: ", ".join(f"{k}: {v}" for k, v in registry.METHODS[m].busy.items()) for m in UNIT_METHODS}
    methods = "method=[" + ", ".join(f"{{name: {m}, {o}}}" for m, o in options.items()) + "]"
    sets = [a for kv in [*BASE, *MLP, methods] for a in ("--set", kv)]
    r = cli("run", *sets, "--out", str(tmp_path / "cli"))
    assert r.returncode == 0, r.stderr
    py = plasticlab.run(None, overrides=[*BASE, methods], out=tmp_path / "py", model=make_mlp)
    rows = read_metrics(tmp_path / "cli", "task_end")
    assert all(isinstance(row[k], float) for row in rows for k in DIAGNOSTICS)
    assert rows == read_metrics(py, "task_end")
    assert (tmp_path / "cli" / "config.yaml").read_text() == (py / "config.yaml").read_text()


# ---------------------------------------------------------------- the example under examples/


EXAMPLE = ["tasks.count=2", "environment.epochs_per_task=1"]


def test_example_runs_from_the_cli_and_python_with_the_same_rows(tmp_path):
    r = cli("run", "examples/label_noise.yaml", *[a for kv in EXAMPLE for a in ("--set", kv)],
            "--out", str(tmp_path / "cli"))
    assert r.returncode == 0, r.stderr
    rows = read_metrics(tmp_path / "cli", "task_end")
    assert len(rows) == 2 and all(0.2 < row["test_acc"] <= 1 for row in rows)
    assert all(isinstance(row[k], float) for row in rows for k in DIAGNOSTICS)
    py = plasticlab.run(ROOT / "examples" / "label_noise.yaml", overrides=EXAMPLE, out=tmp_path / "py",
                        model=make_model, tasks=LabelNoise)
    assert read_metrics(py) == read_metrics(tmp_path / "cli")
    prov = read_json(py / "provenance.json")
    assert prov["python_factories"] == {"model.factory": "examples.label_noise:make_model",
                                        "tasks.factory": "examples.label_noise:LabelNoise"}
    r = cli("run", "--resume", str(py))  # factories given in Python by an importable path: the CLI resolves them
    assert r.returncode == 0 and "run done" in r.stdout, r.stderr


def test_sweep_workers_import_the_factories_from_the_working_directory(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": str(ROOT / "examples" / "label_noise.yaml"), "seeds": [0],
                                     "grid": {"tasks.count": [1], "environment.epochs_per_task": [1],
                                              "model.kwargs.width": [8]}}))
    # the console script, no PYTHONPATH: the driver and its spawned worker find `examples` in the current directory
    if not (Path(sys.executable).parent / "plasticlab").exists():
        pytest.skip("the plasticlab console script is not installed next to this Python")
    r = cli("sweep", str(sweep), "--executor", "process", "--workers", "1", "--out", str(tmp_path / "s"), script=True)
    assert r.returncode == 0, r.stderr
    (metrics,) = (tmp_path / "s").rglob("metrics.jsonl")
    assert [row["task"] for row in read_metrics(metrics.parent, "task_end")] == [0]


def test_label_noise_stream_flips_the_asked_share_to_other_labels():
    s = loop.setup(resolve(ROOT / "examples" / "label_noise.yaml", ["tasks.kwargs.noise=0.3"]))
    base, clean = s.base, s.base.y_train
    a, b, a2 = s.task(0), s.task(1), s.family.make_task(base, 0, 0)
    wrong = a.y_train != clean
    assert abs(wrong.double().mean().item() - 0.3) < 0.04  # ~1400 examples: 3.3 standard deviations
    assert torch.equal(a.y_train, a2.y_train) and not torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_train, base.x_train) and torch.equal(a.y_test, base.y_test)
    assert not torch.equal(s.family.make_task(base, 1, 0).y_train, a.y_train)  # the seed matters


# ---------------------------------------------------------------- task streams


def test_custom_stream_tasks_measures_and_kinds():
    cfg = resolve(None, BASE + ["tasks.family=custom", "tasks.factory=tests.user_code:FirstHalf",
                                "tasks.kwargs.shift=3", "environment.kind=task-sampling"])
    assert cfg.tasks.kinds == ("abrupt", "task-sampling") and cfg.tasks.cross_entropy
    s = loop.setup(cfg)
    n = s.base.x_train.shape[0] // 2
    assert s.n_train == n and s.family.input_shape(s.base) == (1, 8, 8)
    t1 = s.task(1)
    assert torch.equal(t1.y_train, (s.base.y_train[:n] + 3) % 10)
    with pytest.raises(UserError, match="environment.kind=output-interpolation does not fit tasks.family=custom"):
        resolve(None, BASE + ["tasks.family=custom", "tasks.factory=tests.user_code:FirstHalf",
                              "environment.kind=output-interpolation"])


def test_stream_with_its_own_loss_is_measured_with_it(tmp_path):
    cfg = resolve(None, BASE + ["tasks.family=custom", "tasks.factory=tests.user_code:SquaredError",
                                "model.hidden=[8]"])
    assert not cfg.tasks.cross_entropy  # a class factory with loss(): not fused, not packed
    s = loop.setup(cfg)
    task = s.task(0)
    row = s.family.measure(s.model, task, 64)
    with torch.no_grad():
        out = s.model(task.x_train)
    want = SquaredError(s.base).loss(out, task.y_train).item()
    assert row["train_loss"] == pytest.approx(want, rel=1e-6)  # float32 chunks vs one batch
    assert row["train_acc"] == pytest.approx((out.argmax(1) == task.y_train).double().mean().item())
    assert row["test_loss"] is not None
    rows = read_metrics(plasticlab.run(cfg, out=tmp_path / "r"), "task_end")
    assert all(math.isfinite(r["train_loss"]) and 0 <= r["train_acc"] <= 1 for r in rows)


def test_python_api_takes_a_stream_factory_and_resumes_exactly(tmp_path):
    def local_stream(data, shift=1):  # not importable: recorded as in-process
        return FirstHalf(data, shift)

    over = BASE + ["tasks.count=3", "engine.checkpoint_every=5", "diagnostics.every=never"]
    full = plasticlab.run(None, overrides=over, out=tmp_path / "full", tasks=local_stream)
    factory = yaml.safe_load((full / "config.yaml").read_text())["tasks"]["factory"]
    assert factory == f"in-process:tests.test_custom:{local_stream.__qualname__}"

    class Stop(Exception):
        pass

    def stop_in_task_1(step, total, task):
        if task == 1:
            raise Stop

    with pytest.raises(Stop):
        plasticlab.run(None, overrides=over, out=tmp_path / "cut", tasks=local_stream, progress=stop_in_task_1)
    r = cli("run", "--resume", str(tmp_path / "cut"))  # another process cannot import it
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "tasks.factory=in-process:" in r.stderr
    with pytest.raises(UserError, match="cannot change tasks.factory"):
        plasticlab.run(out=tmp_path / "cut", resume=True, tasks=FirstHalf)
    resumed = plasticlab.run(out=tmp_path / "cut", resume=True, tasks=local_stream)
    assert read_metrics(resumed) == read_metrics(full)


# ---------------------------------------------------------------- refusals: one line, nothing written


@pytest.mark.parametrize("factory, message", [
    ("nope_pkg.mod:f", "no module named 'nope_pkg'"),
    ("tests.user_code:nope", "has no attribute 'nope'"),
    ("tests.user_code:NOT_CALLABLE", "is a int, not a function or class"),
    ("tests user_code", "expected 'package.module:function'"),
    ("", "required"),
])
def test_bad_factory_paths_are_refused_at_config_load(factory, message):
    for section, tag in (("model", "name"), ("tasks", "family")):
        with pytest.raises(UserError, match=f"{section}.factory") as e:
            resolve(None, [f"{section}.{tag}=custom", f"{section}.factory={factory}"])
        assert message in str(e.value) and "\n" not in str(e.value)


def test_an_import_error_inside_the_user_module_is_the_users_traceback(tmp_path, monkeypatch):
    (tmp_path / "broken_user_mod.py").write_text("import not_a_real_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="not_a_real_module_xyz"):
        resolve(None, ["model.name=custom", "model.factory=broken_user_mod:f"])


@pytest.mark.parametrize("section, factory, message", [
    ("model", "no_arguments", "cannot be called as factory(input_shape, n_outputs, **kwargs)"),
    ("model", "not_a_module", "returned str, expected a torch.nn.Module"),
    ("model", "wrong_outputs", "to (2, 11), expected (2, 10)"),
    ("model", "wrong_inputs", "fails on a batch of shape (2, 1, 8, 8)"),
    ("tasks", "NoTask", "without a task(seed, t) method"),
    ("tasks", "BadTask", "task(seed, t) returned Tensor"),
    ("tasks", "LossOnly", "define both or neither"),
    ("tasks", "BadKinds", "kinds=('sideways',)"),
])
def test_bad_factories_are_refused_before_anything_is_written(tmp_path, section, factory, message):
    tag = "name" if section == "model" else "family"
    with pytest.raises(UserError) as e:
        plasticlab.run(None, out=tmp_path / "r", overrides=[
            *BASE, f"{section}.{tag}=custom", f"{section}.factory=tests.user_code:{factory}"])
    assert message in str(e.value) and f"{section}.factory" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()


def test_tasks_of_different_sizes_are_refused_with_the_task_named():
    s = loop.setup(resolve(None, BASE + ["tasks.family=custom", "tasks.factory=tests.user_code:GrowingTasks"]))
    with pytest.raises(UserError, match="task 1: x_train has shape"):
        s.task(1)


def test_cli_bad_factory_exits_2_with_one_line(tmp_path):
    r = cli("run", "--set", "model.name=custom", "--set", "model.factory=tests.user_code:wrong_outputs",
            "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "model.factory" in r.stderr
    assert not (tmp_path / "r").exists()


def test_given_factories_keep_the_options_the_custom_component_has():
    cfg = resolve({"tasks": {"family": "permuted-pixels", "count": 3}, "model": {"name": "mlp", "hidden": [8]}},
                  ["model.kwargs.hidden=4"], factories={"model": "tests.user_code:make_mlp",
                                                        "tasks": "tests.user_code:FirstHalf"})
    assert (cfg.tasks.family, cfg.tasks.count, cfg.tasks.factory) == ("custom", 3, "tests.user_code:FirstHalf")
    assert (cfg.model.name, cfg.model.factory) == ("custom", "tests.user_code:make_mlp")
    assert cfg.model.kwargs == {"hidden": 4} and not hasattr(cfg.model, "hidden")


def test_give_records_an_import_path_only_when_it_resolves_to_the_same_object():
    from plasticlab.tasks.custom import GIVEN, give

    assert give(make_mlp, "model") == "tests.user_code:make_mlp"
    label = give(lambda shape, n: make_mlp(shape, n), "model")
    assert label == "in-process:tests.test_custom:test_give_records_an_import_path_only_when_it_resolves_to_the_" \
                    "same_object.<locals>.<lambda>" and label in GIVEN
    with pytest.raises(UserError, match="expected a function or class"):
        give(3, "model")
    with pytest.raises(UserError, match="got a Linear instance"):
        give(torch.nn.Linear(2, 2), "plasticlab.run(model=...)")
    assert user_code.make_mlp is make_mlp
