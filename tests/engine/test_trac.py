"""TRAC (engine/trac.py): erfi against known values; two steps equal the reference algorithm by
hand; resets keep their values; resume-exact through the engine."""

import math

import pytest
import torch

from plasticlab.engine.trac import TRACAdam, erfi, trac_over
from plasticlab.methods.entry_adam import EntryAdam
from tests.engine.test_upgd import assert_resume_exact
from tests.methods.methods_driver import tiny

ERFI = {0.0: 0.0, 0.3: 0.34894933875893624, -0.9: -1.3715432015722877, 1 / math.sqrt(2): 0.9534382692512609,
        2.5: 130.39575501324694, 4.99: 7525063920.518317, 5.01: 9152804466.19902, 8.0: 4.432449746002334e+26,
        -12.0: -1.6299357995243493e+61, 26.0: 8.31463716473099e+291}
"""scipy.special.erfi at these points."""


def test_erfi_matches_known_values_on_both_sides_of_the_switch():
    x = torch.tensor(list(ERFI), dtype=torch.float64)
    torch.testing.assert_close(erfi(x), torch.tensor(list(ERFI.values()), dtype=torch.float64), rtol=1e-12, atol=0)


def adam_update(grads: list[list[float]], lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """Adam's k-th update (k = len(grads)) of each entry, written out."""
    k = len(grads)
    out = []
    for i in range(len(grads[0])):
        m = sum((1 - b1) * b1 ** (k - 1 - j) * g[i] for j, g in enumerate(grads))
        v = sum((1 - b2) * b2 ** (k - 1 - j) * g[i] ** 2 for j, g in enumerate(grads))
        out.append(-lr * (m / (1 - b1**k)) / (math.sqrt(v / (1 - b2**k)) + eps))
    return out


def scales(sigma: list[float], variance: list[float], s_init: float, eps: float) -> list[float]:
    f = s_init / ERFI[1 / math.sqrt(2)]
    return [f * erfi(torch.tensor(sg / (math.sqrt(2) * math.sqrt(v) + eps), dtype=torch.float64)).item()
            for sg, v in zip(sigma, variance, strict=True)]


def test_two_steps_by_hand():
    betas, s_init, eps, lr = [0.5, 0.9], 1.0, 1e-8, 0.1
    ref = [1.0, 2.0]
    w = torch.nn.Parameter(torch.tensor(ref, dtype=torch.float64))
    opt = TRACAdam([w], lr=lr)
    opt.init_trac(betas, s_init, eps)
    g1, g2 = [1.0, -1.0], [0.5, 0.5]

    # step 1: Δ = 0 so h = 0; v = 0; σ_j = β_j·1e-8; θ = θ_ref + u1·ΣS
    w.grad = torch.tensor(g1, dtype=torch.float64)
    opt.step()
    sigma = [b * 1e-8 for b in betas]
    s1 = sum(scales(sigma, [0.0, 0.0], s_init, eps))
    u1 = adam_update([g1], lr)
    theta1 = [r + u * s1 for r, u in zip(ref, u1, strict=True)]
    torch.testing.assert_close(w.detach(), torch.tensor(theta1, dtype=torch.float64))

    # step 2: Δ = (θ1 − θ_ref)/(S1 + ε); h = ⟨Δ, g2⟩; v_j = h²; σ_j = β_j·σ_j − h
    w.grad = torch.tensor(g2, dtype=torch.float64)
    opt.step()
    delta = [(t - r) / (s1 + eps) for t, r in zip(theta1, ref, strict=True)]
    h = sum(d * g for d, g in zip(delta, g2, strict=True))
    sigma = [b * sg - h for b, sg in zip(betas, sigma, strict=True)]
    s2 = sum(scales(sigma, [h * h, h * h], s_init, eps))
    u2 = adam_update([g1, g2], lr)
    theta2 = [r + (d + u) * max(s2, 0.0) for r, d, u in zip(ref, delta, u2, strict=True)]
    assert h < 0 < s2  # the case tested: the gradient points along Δ, so the scale grows
    torch.testing.assert_close(w.detach(), torch.tensor(theta2, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_negative_scale_returns_to_the_reference():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    opt = TRACAdam([w], lr=0.1)
    opt.init_trac([0.5], 1.0, 1e-8)
    opt.trac["sigma"].fill_(-5.0)  # as after steps whose gradients pointed against Δ
    opt.trac["variance"].fill_(1.0)
    w.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    opt.step()
    assert opt.trac["s"].sum() < 0
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_trac_over_entry_adam_and_engine_choice():
    assert trac_over(torch.optim.Adam) is TRACAdam
    assert issubclass(trac_over(EntryAdam), EntryAdam) and trac_over(EntryAdam) is trac_over(EntryAdam)
    s = tiny({"name": "cbp"}, optim="trac")
    assert isinstance(s.optimizer, EntryAdam) and hasattr(s.optimizer, "trac")  # auto: cbp wants per-entry steps
    assert s.cfg.optim.per_entry_step is True
    s = tiny(optim="trac")
    assert type(s.optimizer) is TRACAdam and s.cfg.optim.per_entry_step is False


@pytest.mark.parametrize("method", [None, {"name": "redo", "every": 3, "tau": 0.5}])
def test_through_the_engine_resume_exact(method):
    def fresh():
        return tiny(*([method] if method else []), tasks=2, steps_per_task=5, optim="trac",
                    overrides=("optim.trac_s_init=0.01",))

    s = assert_resume_exact(fresh, 7)
    assert s.optimizer.trac["s"].abs().sum() > 0
