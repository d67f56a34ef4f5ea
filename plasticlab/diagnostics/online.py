"""``online_plasticity``: how much one update lowers the loss of the batch it was computed on.

Definition (Elsayed & Mahmood 2024, UPGD's "online plasticity"): on a measured step with batch B,

    online_plasticity = 1 − L(θ_after; B) / L(θ_before; B)

averaged over the measured steps of a task (the window: from the task's first step, its
transition included, to the end of its pure phase), reported in the ``task_end`` row. 1 = the
update removed the batch's loss, 0 = it changed nothing, < 0 = it made the batch worse. A network
that has lost plasticity takes updates that barely lower the loss of the very batch they follow.

Measured every ``diagnostics.online_every`` steps (0 = off): two extra forward passes of the
measured step's batch, in eval mode (so BatchNorm statistics and dropout are not touched and the
run is unchanged), under the run's precision. Sums stay on the device (no host sync) and are
checkpointed with the open row, so resume is exact.
*Departs from UPGD's code*: UPGD averages per-example ratios over a sliding window of steps of a
single stream; plasticlab uses the mean loss of the training batch and one window per task.
"""

from __future__ import annotations

import torch

KEY = "online"
"""The open row's entry holding (Σ ratio, count) on the device."""


@torch.no_grad()
def batch_loss(s, x: torch.Tensor, target: torch.Tensor, autocast) -> torch.Tensor:
    """The task loss of (x, target) for run ``s`` in eval mode, as a 0-d device tensor."""
    s.model.eval()
    try:
        with autocast:
            loss = s.family.loss(s.model, x, target)[0]
    finally:
        s.model.train()
    return loss.detach().float()


def add(row: dict, before: torch.Tensor, after: torch.Tensor) -> None:
    """Add one measured step's ratio to the open row's (Σ ratio, count)."""
    ratio = 1.0 - after / before.clamp_min(1e-12)
    sums = torch.stack([ratio, torch.ones_like(ratio)])
    row[KEY] = sums if KEY not in row else row[KEY] + sums


def value(row: dict) -> dict:
    """``{"online_plasticity": mean over the task's measured steps}`` (None if none was measured)."""
    if KEY not in row:
        return {"online_plasticity": None}
    total, count = row[KEY].tolist()  # SYNC: once per task end
    return {"online_plasticity": total / count if count else None}
