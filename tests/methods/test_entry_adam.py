"""EntryAdam equals torch's Adam/AdamW without resets, and a reset entry restarts like a fresh Adam."""

import copy

import pytest
import torch

from plasticlab.methods.entry_adam import EntryAdam
from plasticlab.units import reset_optimizer_state
from tests.methods.methods_driver import run, tiny


def trained(name: str, wd: float, per_entry_step: bool) -> torch.nn.Module:
    """A tiny model after 20 real engine steps with optimiser ``name`` (EntryAdam when ``per_entry_step``)."""
    s = tiny(tasks=1, steps_per_task=20, optim=name,
             overrides=(f"optim.weight_decay={wd}", f"optim.per_entry_step={str(per_entry_step).lower()}"))
    assert isinstance(s.optimizer, EntryAdam) == per_entry_step
    if not per_entry_step:
        assert type(s.optimizer) is {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    run(s)
    return s.model


@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_matches_torch_adam_and_adamw(name, wd):
    ours, torchs = trained(name, wd, True), trained(name, wd, False)
    for (k, p), q in zip(ours.named_parameters(), torchs.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=k)
    plain = trained("adam" if name == "adamw" else "adamw", wd, True)  # the other coupling differs when wd > 0
    assert (wd == 0) == all(torch.equal(p, q) for p, q in zip(ours.parameters(), plain.parameters(), strict=True))


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


def test_bias_corrections_derived_from_step_when_a_checkpoint_lacks_them():
    """A state saved before the per-entry bias corrections were kept (step, moments only) resumes exactly."""
    w = torch.nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    opt = EntryAdam([w], lr=0.1)
    for _ in range(5):
        w.grad = torch.sin(w.detach() * 3)
        opt.step()
    old = copy.deepcopy(opt.state_dict())  # as a checkpoint holds it (load_state_dict would share the tensors)
    for st in old["state"].values():
        del st["bias_correction1"], st["bias_correction2"]
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = EntryAdam([w2], lr=0.1)
    opt2.load_state_dict(old)
    for p, o in ((w, opt), (w2, opt2)):
        p.grad = torch.sin(p.detach() * 3)
        o.step()
    torch.testing.assert_close(w2, w)
    torch.testing.assert_close(opt2.state[w2]["bias_correction2"], 1 - 0.999 ** opt.state[w]["step"])
