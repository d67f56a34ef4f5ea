"""Control for the blur recipe's reset-frozen effect: reset as many units, chosen among the NON-frozen ones.

If re-initialising any ~29% of the units recovered the blur deficit as well as re-initialising the
frozen ones, the effect would not be about mutual freezing. ``reset-nonfrozen`` (defined here, not a
plasticlab method) re-draws, in each layer, as many units as that layer has frozen units (τ = 0.1),
drawn uniformly without replacement from its non-frozen units (generator from (seed,
"reset-nonfrozen", 1)), exactly as ``reset-frozen`` re-draws the frozen ones (incoming from init,
outgoing from init). Re-drawing a live unit's rows and columns also re-draws the entries it shares
with frozen units (a frozen unit of the next layer reads it; a frozen unit of the previous layer is
read by it), which gives those frozen units non-small partner weights: by the definition they are
no longer frozen. ``reset-nonfrozen-keep`` restores every entry of the frozen units afterwards, so
they stay frozen while as many fresh units join. Runs the recipe's quick profile with
interventions [none, reset-frozen, reset-nonfrozen, reset-nonfrozen-keep] on seeds 0-9 and 100-109
into OUT (default runs/nonfrozen-control) and prints the summary tables (frozen_dead_summary.py).
About 75 s of CPU time per seed set, one thread.

    .venv/bin/python docs/reproduction/zilly-blur-reset/nonfrozen_control.py [OUT]
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from plasticlab import registry
from plasticlab.diagnostics.frozen import frozen_mask
from plasticlab.methods.reset_frozen import ResetFrozen
from plasticlab.recipes import sweep_of
from plasticlab.transfer import run_transfer
from plasticlab.units import reinit_units

sys.path.insert(0, str(Path(__file__).parents[1] / "zilly-transfer-size"))
from frozen_dead_summary import fmt, summary  # noqa: E402


@registry.register(registry.METHODS, "reset-nonfrozen")
@dataclass
class ResetNonFrozen(ResetFrozen):
    """Re-draw as many non-frozen units per layer as the layer has frozen units."""

    name: str = "reset-nonfrozen"
    keep_frozen: bool = False
    """Restore the frozen units' entries after the reset (``reset-nonfrozen-keep``)."""

    @torch.no_grad()
    def on_task_start(self, task: int) -> None:
        if not self.chosen(task):
            return
        ctx = self.ctx_
        g = ctx.generator("reset-nonfrozen", task)
        masks = [frozen_mask(layer, self.tau).cpu() for layer in ctx.units]  # all before any change, as reset-frozen
        kept = {}  # id(tensor) → (tensor, its entries at frozen units, their values before the reset)
        if self.keep_frozen:
            for layer, frozen in zip(ctx.units, masks, strict=True):
                for sl in layer.incoming + layer.outgoing:
                    t, m = sl.tensor, sl.unit_mask(frozen.to(sl.tensor.device))
                    old = kept.get(id(t), (t, torch.zeros_like(m), t.detach().clone()))
                    kept[id(t)] = (t, old[1] | m, old[2])
        for layer, frozen in zip(ctx.units, masks, strict=True):
            live = (~frozen).nonzero().flatten()
            pick = live[torch.randperm(live.numel(), generator=g)[: int(frozen.sum())]]
            mask = torch.zeros_like(frozen)
            mask[pick] = True
            reinit_units(layer, mask.to(layer.in_weight.tensor.device), outgoing=self.outgoing, generator=g)
        for t, m, old in kept.values():
            t.copy_(torch.where(m, old, t))


@registry.register(registry.METHODS, "reset-nonfrozen-keep")
@dataclass
class ResetNonFrozenKeep(ResetNonFrozen):
    """``reset-nonfrozen``, then every entry of a frozen unit (its rows and columns) restored: they stay frozen."""

    name: str = "reset-nonfrozen-keep"
    keep_frozen: bool = True


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/nonfrozen-control")
    spec = sweep_of("zilly-blur-reset", "quick")["transfer"]
    spec["interventions"] = ["none", "reset-frozen", "reset-nonfrozen", "reset-nonfrozen-keep"]
    for seeds in (list(range(10)), list(range(100, 110))):
        d = out / f"seeds{seeds[0]}"
        if not (d / "results.jsonl").exists():
            run_transfer({**spec, "seeds": seeds}, out=d)
        print(summary(d), "\n", flush=True)
        print(versus(d, "reset-frozen", ["reset-nonfrozen", "reset-nonfrozen-keep"]), "\n", flush=True)


def versus(d: Path, label: str, others: list[str]) -> str:
    """Paired (by seed) differences ``label`` − each of ``others``, mean ± 95% CI per N (* = excludes 0)."""
    rows = [json.loads(line) for line in open(d / "results.jsonl")]
    acc = {(r["intervention"], r["samples_per_class"], r["seed"]): r["test_acc"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    ns = list(dict.fromkeys(r["samples_per_class"] for r in rows))
    return "\n".join(f"| {label} − {o} (paired) | "
                     + " | ".join(fmt([acc[label, n, s] - acc[o, n, s] for s in seeds], star=True) for n in ns) + " |"
                     for o in others)


if __name__ == "__main__":
    main()
