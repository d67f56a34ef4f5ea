"""``plasticlab`` commands for tests, each in its own forked process, from one server that paid the imports.

A command spends ~3–5 s importing torch, torch._dynamo and scikit-learn before it does anything;
the suite runs dozens of CLI commands. So one server process imports them once and *forks* a
child per command, which runs ``runpy.run_module("plasticlab", run_name="__main__")`` exactly as
``python -m plasticlab`` does (own process, own exit code, working directory, environment and
process group; stdin closed). ``PLASTICLAB_DOCS_TEST_SPAWN=1`` (or a platform without ``fork``)
runs every command as a plain ``python -m plasticlab`` subprocess instead: same results, slower.

Usage::

    rc, out, err = SHARED.run(["run", "--dry-run"], cwd, env, timeout=300)
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVER = r"""
import json, os, runpy, sys, time, traceback
import torch, torch._dynamo, sklearn.datasets  # noqa: F401  the slow imports of every command, paid once
import plasticlab.cli  # noqa: F401

for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the command: like `python -m plasticlab ARGS` after the imports above
        code = 1
        try:
            os.setpgid(0, 0)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            for fd, name in ((1, "stdout"), (2, "stderr")):
                os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.argv = ["plasticlab", *req["argv"]]
            try:
                runpy.run_module("plasticlab", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() - start > req["timeout"]:
            try:
                os.killpg(pid, 9)  # the command and any workers it started
            except ProcessLookupError:
                os.kill(pid, 9)
            os.waitpid(pid, 0)
            rc = "timeout"
            break
        time.sleep(0.02)
    print(json.dumps({"rc": rc, "seconds": round(time.monotonic() - start, 2)}), flush=True)
"""


class Server:
    """The fork server, started on first use; ``proc`` None runs each command as a plain subprocess."""

    def __init__(self):
        self.proc = None
        self.spawn = not hasattr(os, "fork") or os.environ.get("PLASTICLAB_DOCS_TEST_SPAWN") == "1"

    def get(self):
        if self.proc is None and not self.spawn:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env, text=True, cwd=ROOT)
        return self.proc

    def run(self, args: list[str], cwd: Path | str, env: dict, timeout: float, log: Path | None = None
            ) -> tuple[int | str, str, str]:
        """Run ``plasticlab ARGS`` in ``cwd`` with ``env``: (exit code or "timeout", stdout, stderr).
        ``log``: where the child's output files go (``log``.out/.err); default a temporary folder."""
        proc = self.get()
        if proc is None:
            try:
                r = subprocess.run([sys.executable, "-m", "plasticlab", *args], cwd=cwd, env=env,
                                   capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return "timeout", "", ""
            return r.returncode, r.stdout, r.stderr
        with tempfile.TemporaryDirectory() as tmp:
            base = log if log is not None else Path(tmp) / "cmd"
            out, err = base.with_suffix(".out"), base.with_suffix(".err")
            proc.stdin.write(json.dumps({"cwd": str(cwd), "env": env, "argv": args, "stdout": str(out),
                                         "stderr": str(err), "timeout": timeout}) + "\n")
            proc.stdin.flush()
            reply = proc.stdout.readline()
            assert reply, "the plasticlab command server died"
            return json.loads(reply)["rc"], out.read_text(errors="replace"), err.read_text(errors="replace")

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)



SHARED = Server()
"""The suite's one command server (started on first use, stopped at exit)."""
atexit.register(SHARED.close)
