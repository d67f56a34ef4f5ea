"""Wall time of CLI startup: ``plasticlab run --help`` and ``run --dry-run CONFIG`` against ``import torch``.

Each command is a fresh ``python`` process, rounds interleaved (the machine is shared); prints the
median seconds of each and the dry-run's ratio to ``import torch`` alone (the floor while config
validation imports the component modules, which import torch). The issue-23 targets: ``--help``
< 1 s, ``--dry-run`` < 2 s.

Usage::

    python benchmarks/startup.py [--rounds 5] [--configs configs/digits.yaml,configs/emnist_permuted.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def seconds(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--configs", default="configs/digits.yaml,configs/emnist_permuted.yaml")
    args = ap.parse_args()
    empty = tempfile.mkdtemp()  # why: a dry run must not need the data; an empty data root proves it
    cmds = {"import torch": [sys.executable, "-c", "import torch"],
            "run --help": [sys.executable, "-m", "plasticlab", "run", "--help"]}
    for c in args.configs.split(","):
        cmds[f"run --dry-run {c}"] = [sys.executable, "-m", "plasticlab", "run", "--dry-run", c,
                                      "--set", f"data.root={empty}"]
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(args.rounds):
        for k, argv in cmds.items():
            times[k].append(seconds(argv))
    torch_s = statistics.median(times["import torch"])
    for k, ts in times.items():
        med = statistics.median(ts)
        print(f"{k:<50} median {med:6.2f} s  ({med / torch_s:4.2f}x import torch)  "
              f"all: {' '.join(f'{t:.2f}' for t in ts)}")


if __name__ == "__main__":
    main()
