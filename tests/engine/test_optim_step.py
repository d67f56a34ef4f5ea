"""``optim.step_optimizers``: one functional fused call per kind is exactly each optimiser's own ``step()``."""

import pytest
import torch
from torch import nn

from plasticlab.engine.optim import mergeable, step_optimizers

KINDS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, fused=True),
    "sgd-momentum-wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, fused=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3, fused=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2, fused=True),
}


def models(n: int) -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)) for _ in range(n)]


def train(ms, opts, stepper, steps: int = 4) -> None:
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        for m, o in zip(ms, opts, strict=True):
            o.zero_grad()
            m(x).pow(2).mean().backward()
        stepper(opts)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_merged_step_equals_each_optimizers_own_step(kind):
    ref, got = models(2), models(2)
    ref_opts = [KINDS[kind](list(m.parameters())) for m in ref]
    got_opts = [KINDS[kind](list(m.parameters())) for m in got]
    assert all(mergeable(o) for o in got_opts)
    train(ref, ref_opts, lambda opts: [o.step() for o in opts])
    train(got, got_opts, step_optimizers)
    for a, b in zip(ref, got, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    for a, b in zip(ref_opts, got_opts, strict=True):  # the state is the optimiser's own, bit for bit
        for p, q in zip(a.param_groups[0]["params"], b.param_groups[0]["params"], strict=True):
            sa, sb = a.state[p], b.state[q]
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa if sa[k] is not None)


def test_what_cannot_be_merged_takes_its_own_step():
    (m,) = models(1)
    assert not mergeable(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, fused=True))
    assert not mergeable(torch.optim.Adam(m.parameters(), lr=0.1, amsgrad=True, fused=True))
    assert not mergeable(torch.optim.Adam(m.parameters(), lr=0.1, foreach=True))
