"""EntryAdam equals torch's Adam/AdamW without resets, and a reset entry restarts like a fresh Adam."""

import pytest
import torch

from plasticlab.methods.entry_adam import EntryAdam
from plasticlab.units import reset_optimizer_state


def run(opt_cls, steps: int, **kw) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, 4, generator=g))
    opt = opt_cls([w], lr=1e-2, **kw)
    for _ in range(steps):
        loss = (w.pow(3).sum() + (w * torch.randn(5, 4, generator=g)).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach()


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_matches_torch_adam_and_adamw(wd):
    torch.testing.assert_close(run(EntryAdam, 20, weight_decay=wd), run(torch.optim.Adam, 20, weight_decay=wd))
    torch.testing.assert_close(run(EntryAdam, 20, weight_decay=wd, decoupled=True),
                               run(torch.optim.AdamW, 20, weight_decay=wd))


def first_update_after_reset(opt_cls) -> float:
    """Update of an entry whose moments were zeroed after a long run (t = 10 000)."""
    w = torch.nn.Parameter(torch.ones(2, 3))
    opt = opt_cls([w], lr=0.1)
    w.sum().backward()
    opt.step()
    state = opt.state[w]
    state["step"].fill_(10_000)  # as after a long run
    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[0, 0] = True
    reset_optimizer_state(opt, w, mask)
    before = w.detach().clone()
    opt.zero_grad()
    (w * 1e-3).sum().backward()
    opt.step()
    return float(w.detach()[0, 0] - before[0, 0])


def test_reset_entries_restart_their_bias_correction():
    # a fresh Adam entry moves by lr·g/(|g|+ε) ≈ lr on its first step …
    assert abs(first_update_after_reset(EntryAdam) + 0.1) < 1e-4
    # … torch's shared step count gives lr·(1−β₁)/√(1−β₂) ≈ 3.16·lr instead
    assert abs(first_update_after_reset(torch.optim.Adam) + 0.1 * 0.1 / 0.001**0.5) < 1e-3
