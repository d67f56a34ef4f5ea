"""Where output interpolation loses train accuracy: `direct` vs `via-uniform` (docs/reproduction.md).

Reads run directories of the quick setting of recipe:lm-random-labels-mnist (`via_uniform.yaml`
beside this file, method none) and replays each run through the Python API: same config and seed,
so the same numbers (every replayed epoch row is checked against the run's own metrics.jsonl). At
every epoch row the replay also measures the live model, in eval mode, on the whole training set
under the OLD task's labels (t−1) and under the NEW task's labels (t): accuracy and cross-entropy.
The run's own epoch rows cannot say this: during a transition their train_acc is scored against
the argmax of the soft target (the old label below α = ½, the new one above, and class 0 where
the target is uniform).

Prints, per group (environment kind, transition.mode, transition.step), mean ± 95% t-CI over
seeds of the per-run means over tasks 1 … T−1 of: the new labels' accuracy and loss at the uniform
midpoint (end of the α = ½ level), at the end of the transition, after one pure epoch and at the
task end; the old labels' accuracy at the same points. Writes a figure of the mean curves.

    for s in 0 1 2; do plasticlab run docs/reproduction/lm-random-labels-mnist/via_uniform.yaml \
        --out runs/vu/via-uniform-d0.5-s$s --set seed=$s --set environment.transition.mode=via-uniform \
        --set environment.transition.step=0.5; done        # and direct, other steps, kind=abrupt
    python docs/reproduction/lm-random-labels-mnist/via_uniform.py runs/vu/* --out via_uniform.png
"""

import argparse
import json
import math
import pathlib
from collections import defaultdict

import matplotlib
import numpy as np
import torch
from scipy import stats

from plasticlab.config import load_config
from plasticlab.engine.build import setup
from plasticlab.engine.loop import run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LN_C = math.log(10)


def replay(run_dir: pathlib.Path) -> tuple[str, list[dict], int]:
    """(group name, epoch records with old/new-label measures, steps per epoch) of one run."""
    cfg = load_config(run_dir / "config.yaml")
    env = cfg.environment
    name = "abrupt" if env.kind == "abrupt" else f"{env.transition.mode} δ={env.transition.step:g}"
    s = setup(cfg, torch.device("cpu"))
    tasks: dict[int, object] = {}
    last = [m for m in s.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    feats: list[torch.Tensor] = []  # the last Linear's input, kept only while ``state`` measures
    last.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0].detach()) if not s.model.training else None)

    def state(j: int) -> dict:
        """The output layer's norm, the logits' spread over classes, and the last hidden layer's
        effective rank (Roy & Vetterli) and dead fraction (units zero on every input) on task j's inputs."""
        s.model.eval()
        with torch.no_grad():
            feats.clear()
            logits = s.model(tasks[j].x_train)
        s.model.train()
        h = feats[-1]
        sv = torch.linalg.svdvals(h)
        p = sv / sv.sum()
        return {"w_out": last.weight.norm().item(), "logit_spread": logits.std(1).mean().item(),
                "erank": torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum()).item(),
                "dead": (h.abs().amax(0) == 0).float().mean().item()}

    def measure(j: int) -> dict:
        if j not in tasks:
            tasks[j] = s.family.make_task(s.base, cfg.seed, j)
        s.model.eval()
        got = s.family.measure(s.model, tasks[j], cfg.engine.eval_batch_size)
        s.model.train()
        return got

    epochs = []

    def sink(row: dict) -> None:
        if row["event"] == "epoch":
            t = row["task"]
            new = measure(t)
            old = measure(t - 1) if t > 0 else {"train_acc": None, "train_loss": None}
            nxt = measure(t + 1) if t + 1 < cfg.tasks.count else {"train_acc": None, "train_loss": None}
            epochs.append({**row, **state(t), "acc_new": new["train_acc"], "loss_new": new["train_loss"],
                           "acc_old": old["train_acc"], "loss_old": old["train_loss"], "acc_next": nxt["train_acc"],
                           "loss_next": nxt["train_loss"]})

    run([s], [sink])
    recorded = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    recorded = [(r["step"], r["train_loss"], r["train_acc"]) for r in recorded if r.get("event") == "epoch"]
    replayed = [(r["step"], r["train_loss"], r["train_acc"]) for r in epochs]
    if recorded != replayed:
        raise SystemExit(f"{run_dir}: the replay's epoch rows differ from the run's metrics.jsonl "
                         "(another plasticlab version?)")
    return name, epochs, s.schedule.steps_per_epoch


def per_task(epochs: list[dict], spe: int) -> dict[int, dict]:
    """Task t's points (t ≥ 1): the previous task's end, the α = ½ level's end, the transition's end,
    one pure epoch, the task end; and its curve (epochs since the task began, acc/loss)."""
    out: dict[int, dict] = {}
    by_task = defaultdict(list)
    for r in epochs:
        by_task[r["task"]].append(r)
    for t, rows in by_task.items():
        if t == 0:
            continue
        prev = by_task[t - 1][-1]
        trans = [r for r in rows if r["phase"] == "transition"]
        pure = [r for r in rows if r["phase"] == "task"]
        mid = [r for r in trans if r["alpha"] == 0.5]
        first = trans[0]["step"] - trans[0]["steps"] if trans else pure[0]["step"] - pure[0]["steps"]
        curve = [(0.0, prev["acc_next"], prev["acc_new"], prev["loss_next"])]
        curve += [((r["step"] - first) / spe, r["acc_new"], r["acc_old"], r["loss_new"]) for r in rows]
        out[t] = {
            "old_at_start": prev["acc_new"],
            "mid_new": mid[-1]["acc_new"] if mid else None, "mid_old": mid[-1]["acc_old"] if mid else None,
            "mid_loss": mid[-1]["loss_new"] if mid else None,
            "switch_new": trans[-1]["acc_new"] if trans else None,
            "switch_old": trans[-1]["acc_old"] if trans else None,
            "switch_loss": trans[-1]["loss_new"] if trans else None,
            "pure1_new": pure[0]["acc_new"], "end_new": pure[-1]["acc_new"], "end_old": pure[-1]["acc_old"],
            "end_loss": pure[-1]["loss_new"], "curve": curve,
            **{f"at{e}_new": [c[1] for c in curve if c[0] <= e + 1e-9][-1] for e in (5, 10)},
            **{f"{k}_{w}": (r[k] if r else None) for k in ("w_out", "logit_spread", "erank", "dead")
               for w, r in (("start", prev), ("mid", mid[-1] if mid else None), ("end", pure[-1]))},
        }
    return out


def ci(values: list[float]) -> str:
    v = np.array([x for x in values if x is not None], float)
    if v.size == 0:
        return "–"
    if v.size < 2:
        return f"{v.mean():.3f}"
    h = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return f"{v.mean():.3f} ± {h:.3f}"


def table(groups: dict, order: list[str], cols: list[tuple[str, str]]) -> None:
    print("| group | seeds | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name in order:
        runs = groups[name]
        cells = []
        for key, _ in cols:
            vals = [None if any(p[key] is None for p in tasks.values())
                    else float(np.mean([p[key] for p in tasks.values()])) for _, tasks in runs]
            cells.append(ci(vals))
        print(f"| {name} | {','.join(str(s) for s, _ in runs)} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).with_name("via_uniform.png"))
    args = ap.parse_args()
    groups: dict[str, list[tuple[int, dict[int, dict]]]] = defaultdict(list)
    for d in sorted(args.runs):
        cfg = load_config(d / "config.yaml")
        name, epochs, spe = replay(d)
        groups[name].append((cfg.seed, per_task(epochs, spe)))
    order = sorted(groups, key=lambda n: (n != "abrupt", n))
    cols = [("mid_new", "new acc @ α=½"), ("mid_old", "old acc @ α=½"), ("mid_loss", "new loss @ α=½"),
            ("switch_new", "new acc @ switch"), ("switch_old", "old acc @ switch"),
            ("switch_loss", "new loss @ switch"), ("pure1_new", "new acc, 1 pure epoch"),
            ("at5_new", "new acc @ epoch 5 of the task"), ("at10_new", "new acc @ epoch 10"),
            ("end_new", "new acc @ task end"), ("end_old", "old acc @ task end")]
    print("mean over tasks 1…T−1 per run, then mean ± 95% t-CI over seeds; acc/loss on the whole training set "
          f"(eval mode); uniform output has loss ln 10 = {LN_C:.3f}")
    table(groups, order, cols)
    print("network state (last Linear: ‖W_out‖_F; logit spread: mean over inputs of the logits' std over classes; "
          "last hidden layer: effective rank of its 500×256 activations, fraction of units zero on every input), "
          "at the previous task's end (start), at α = ½ (mid) and at the task end (end)")
    table(groups, order, [(f"{k}_{w}", f"{k} {w}") for k in ("w_out", "logit_spread", "erank", "dead")
                          for w in ("start", "mid", "end")])

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    for i, name in enumerate(order):
        color = f"C{i}"
        curves = [p["curve"] for _, tasks in groups[name] for p in tasks.values()]
        x = np.array([c[0] for c in curves[0]])
        for ax, j in zip(axes[:3], (1, 2, 3), strict=True):
            y = np.mean([[c[j] if c[j] is not None else np.nan for c in cur] for cur in curves], 0)
            ax.plot(x, y, color=color, marker="o", ms=2.5, label=name)
        ends = np.mean([[tasks[t]["end_new"] for t in sorted(tasks)] for _, tasks in groups[name]], 0)
        axes[3].plot(np.arange(1, ends.size + 1), ends, color=color, marker="o", ms=3, label=name)
    axes[0].set(xlabel="epochs since the task began", ylabel="accuracy on the NEW labels",
                title="new labels (mean over tasks 1…T−1, seeds)")
    axes[1].set(xlabel="epochs since the task began", ylabel="accuracy on the OLD labels", title="old labels")
    axes[2].set(xlabel="epochs since the task began", ylabel="cross-entropy on the NEW labels",
                title="loss on the new labels")
    axes[2].axhline(LN_C, color="grey", lw=0.8, ls="--")
    axes[3].set(xlabel="task", ylabel="train accuracy at task end", title="task-end train_acc (mean over seeds)")
    for ax in axes[:3]:
        ax.axvline(10, color="grey", lw=0.8, ls=":")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
