"""Continual Backprop: maturity, replacement rate, lowest-utility choice, bias correction, conv units.

The steps are the engine's (``loop.run`` / ``train_step``); ``spy`` looks at the state right before
and right after the engine's call of ``after_step``, i.e. after the step's optimiser update."""

import torch

from plasticlab.methods.cbp import outgoing_magnitude
from tests.methods.methods_driver import (
    conv_builder,
    ff_builder,
    mlp_builder,
    run,
    run_until,
    snapshot,
    spy,
    step,
    tiny,
)

# Replacements per step of 8 units with ρ = 0.25, m = 3, from the definition: a unit is mature once its
# age exceeds 3 steps; each step adds ρ·(mature units) to acc and replaces ⌊acc⌋ of them (which mature
# units are chosen does not change the counts):
#   steps 1–3: none mature;  step 4: 8 mature → 2 (acc 0);  step 5: 6 → 1 (acc 0.5);  step 6: 5 → 1 (0.75);
#   step 7: 4 → 1 (0.75);  step 8: 3 + the 2 of step 4 → 2 (0);  steps 9–11: 3 + the one of step 5, 6, 7 → 1 (0);
#   step 12: 3 + the 2 of step 8 → 1 (0.25).
COUNTS = [0, 0, 0, 2, 1, 1, 1, 2, 1, 1, 1, 1]


def test_never_replaces_immature_units_and_replaces_at_the_rate():
    s = tiny({"name": "cbp", "replacement_rate": 0.25, "maturity": 3, "decay": 0.9},
             factory=mlp_builder(hidden=(8, 8)), tasks=1, steps_per_task=16)
    m = s.methods[0]
    eta = 0.9
    counts = [[], []]
    seen = {}

    def before(k, x):
        seen.update(ages=[a.clone() for a in m.age_], utils=[u.clone() for u in m.util_],
                    acts=[a.clone() for a in s.ctx.activations],
                    mags=[outgoing_magnitude(layer).clone() for layer in s.unit_map],
                    snap=snapshot(s.model, s.optimizer))

    def after(k, x):
        replaced = [m.age_[i] == 0 for i in range(2)]
        for i in range(2):
            age = seen["ages"][i] + 1
            counts[i].append(int(replaced[i].sum()))
            assert (age[replaced[i]] > 3).all()  # immature units are never replaced
            util = eta * seen["utils"][i] + (1 - eta) * seen["acts"][i].abs().mean(0) * seen["mags"][i]
            score = util / (1 - eta ** age.double()).float()
            mature = age > 3
            if replaced[i].any():  # the lowest bias-corrected utilities among mature units
                assert score[replaced[i]].max() <= score[mature & ~replaced[i]].min()
        r0, r1 = replaced
        w0, w1 = s.model.linears[0].weight, s.model.linears[1].weight
        assert (w1[~r1][:, r0] == 0).all()  # outgoing columns of layer-0 replacements (rows kept in layer 1)
        assert (s.optimizer.state[w0]["exp_avg"][r0] == 0).all()
        assert (s.optimizer.state[w0]["exp_avg_sq"][r0] == 0).all()
        assert torch.equal(w0[~r0], seen["snap"]["params"]["linears.0.weight"][~r0])

    calls = spy(m, "after_step", before, after)
    run_until(s, 12)
    assert calls == list(range(12))
    assert counts[0] == counts[1] == COUNTS
    assert sum(counts[0]) > 0


def test_bias_correction_moves_mean_contribution_into_next_bias():
    s = tiny({"name": "cbp", "replacement_rate": 1 / 8, "maturity": 0, "decay": 0.5},
             factory=mlp_builder(hidden=(8,)), tasks=1)  # exactly one unit per step
    m = s.methods[0]
    seen = {}

    def before(k, x):
        if k == 3:
            seen.update(f_prev=m.mean_act_[0].clone(), age_prev=m.age_[0].clone(), act=s.ctx.activations[0],
                        head_w=s.model.head.weight.detach().clone(), head_b=s.model.head.bias.detach().clone())

    def after(k, x):
        if k == 3:
            (j,) = (m.age_[0] == 0).nonzero().flatten().tolist()
            f = 0.5 * seen["f_prev"][j] + 0.5 * seen["act"][:, j].mean()
            corrected = f / (1 - 0.5 ** (seen["age_prev"][j] + 1).double()).float()
            expected = seen["head_b"] + seen["head_w"][:, j] * corrected
            torch.testing.assert_close(s.model.head.bias.detach(), expected, rtol=1e-6, atol=1e-7)
            assert (s.model.head.weight[:, j] == 0).all()
            seen["checked"] = True

    spy(m, "after_step", before, after)
    run(s)  # one task of 4 steps
    assert seen["checked"]


def test_without_bias_correction_next_bias_is_untouched():
    s = tiny({"name": "cbp", "replacement_rate": 1 / 8, "maturity": 0, "bias_correction": False},
             factory=mlp_builder(hidden=(8,)))
    m = s.methods[0]
    seen = {}
    spy(m, "after_step", before=lambda k, x: seen.update(b=s.model.head.bias.detach().clone()))
    step(s, 0)
    assert torch.equal(s.model.head.bias, seen["b"]) and int((m.age_[0] == 0).sum()) == 1


def test_conv_units_with_grouped_outgoing_columns():
    s = tiny({"name": "cbp", "replacement_rate": 0.25, "maturity": 0, "decay": 0.9},
             factory=conv_builder())  # 4 channels → one per step
    m = s.methods[0]
    seen = {}
    spy(m, "after_step", before=lambda k, x: seen.update(snap=snapshot(s.model, s.optimizer),
                                                          act=s.ctx.activations[0]))
    step(s, 0)
    before, act = seen["snap"], seen["act"]
    (j,) = (m.age_[0] == 0).nonzero().flatten().tolist()
    cols = slice(25 * j, 25 * j + 25)
    head = s.model.head
    assert (head.weight[:, cols] == 0).all()
    assert (s.optimizer.state[head.weight]["exp_avg"][:, cols] == 0).all()
    others = torch.ones(100, dtype=torch.bool)
    others[cols] = False
    assert torch.equal(head.weight[:, others], before["params"]["head.weight"][:, others])
    f = 0.1 * act[:, j].mean() / (1 - 0.9)  # f = (1 − η)·mean h, bias-corrected by 1 − η¹
    expected = before["params"]["head.bias"] + before["params"]["head.weight"][:, cols].sum(1) * f
    torch.testing.assert_close(head.bias.detach(), expected, rtol=1e-5, atol=1e-6)


def test_sequence_units_without_next_bias():
    s = tiny({"name": "cbp", "replacement_rate": 1 / 8, "maturity": 0, "decay": 0.9},
             factory=ff_builder())  # one of 8 units per step
    m = s.methods[0]
    assert m.next_bias_ == [None]  # wo has no bias: nothing to correct
    seen = {}
    spy(m, "after_step", before=lambda k, x: seen.update(act=s.ctx.activations[0],  # (B, L, units)
                                                          mag=s.model.wo.weight.detach().abs().sum(0),
                                                          snap=snapshot(s.model, s.optimizer)))
    step(s, 0)
    expected_util = 0.1 * seen["act"].abs().mean((0, 1)) * seen["mag"]
    (j,) = (m.age_[0] == 0).nonzero().flatten().tolist()
    assert j == int(torch.argmin(expected_util))  # age 1 everywhere: û ∝ u
    assert (s.model.wo.weight[:, j] == 0).all()
    keep = torch.arange(8) != j
    torch.testing.assert_close(m.util_[0][keep], expected_util[keep])
    assert torch.equal(s.model.wi.weight[keep], seen["snap"]["params"]["wi.weight"][keep])
