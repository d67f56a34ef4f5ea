"""The slowly-changing-regression figure and table of docs/reproduction.md from a `dohare-scr` sweep.

Reads every run's `epoch` rows (batch 1, one pass: `train_loss` = the online squared error of the
period), averages the seeds per method, and divides each period's error by the variance of the
target on that period's inputs (every setting of the free bits; the error of predicting the mean):
err/var = 1 means the network predicts nothing beyond a constant.

    python docs/reproduction/dohare-scr/online_error.py SWEEP_DIR OUT.png
"""

import json
import pathlib
import sys

import matplotlib
import numpy as np

from plasticlab.config import load_config
from plasticlab.registry import FAMILIES

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sweep, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
for line in (sweep / "runs.jsonl").read_text().splitlines():
    entry = json.loads(line)
    run = sweep / entry["path"]
    cfg = load_config(run / "config.yaml")
    fam = cfg.tasks
    base = fam.prepare(cfg.seed, "cpu")
    var = np.array([fam.make_task(base, cfg.seed, t).y_test.var(unbiased=False).item() for t in range(fam.count)])
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    err = np.array([r["train_loss"] for r in rows if r["event"] == "epoch"])
    curves.setdefault(entry["point"]["method"]["name"], []).append((err, err / var))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
print("| method | seeds | " + " | ".join(f"periods {i + 1}–{i + 5}" for i in range(0, 25, 5)) + " | all |")
print("|---|---|" + "---|" * 6)
for name, runs in curves.items():
    err = np.mean([r[0] for r in runs], 0)
    fvu = np.mean([r[1] for r in runs], 0)
    x = np.arange(1, err.size + 1)
    axes[0].plot(x, err, marker="o", ms=3, label=f"{name} ({len(runs)} seeds)")
    axes[1].plot(x, fvu, marker="o", ms=3, label=name)
    cells = [f"{err[i:i + 5].mean():.2f} ({fvu[i:i + 5].mean():.2f})" for i in range(0, err.size, 5)]
    print(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {err.mean():.2f} ({fvu.mean():.2f}) |")
axes[0].set(xlabel="period", ylabel="online squared error", title="error per period (mean over seeds)")
axes[1].set(xlabel="period", ylabel="error / target variance", title="error relative to predicting the mean")
axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
axes[0].legend()
fig.tight_layout()
fig.savefig(out, dpi=100)
