"""Continual Backprop: maturity, replacement rate, lowest-utility choice, bias correction, conv units."""

import math

import torch

from plasticlab.methods.cbp import CBP, outgoing_magnitude
from tests.methods.methods_driver import Driver, conv_builder, ff_builder, mlp_builder, snapshot


def expected_counts(units: int, rate: float, maturity: int, steps: int) -> list[int]:
    """Replacements per step from the definition (which mature unit is chosen does not change counts)."""
    ages, acc, out = [0] * units, 0.0, []
    for _ in range(steps):
        ages = [a + 1 for a in ages]
        mature = [i for i, a in enumerate(ages) if a > maturity]
        acc += rate * len(mature)
        n = math.floor(acc)
        acc -= n
        for i in mature[:n]:
            ages[i] = 0
        out.append(n)
    return out


def test_expected_counts_by_hand():
    # 8 units, ρ = 0.25, m = 3: nothing for 3 steps, then 8·0.25 = 2, then 6·0.25 → 1 (acc 0.5), …
    assert expected_counts(8, 0.25, 3, 8) == [0, 0, 0, 2, 1, 1, 1, 2]


def test_never_replaces_immature_units_and_replaces_at_the_rate():
    m = CBP(replacement_rate=0.25, maturity=3, decay=0.9)
    d = Driver([m], build=mlp_builder(hidden=(8, 8)))
    eta = 0.9
    counts = [[], []]
    for step in range(12):
        x, y = d.batch(step)
        d.optimise(x, y)
        ages = [a.clone() for a in m.age_]
        utils = [u.clone() for u in m.util_]
        acts = [a.clone() for a in d.ctx.activations]
        mags = [outgoing_magnitude(layer).clone() for layer in d.units]
        before = snapshot(d.model, d.optimizer)
        d.after(step, x)
        replaced = [m.age_[i] == 0 for i in range(2)]
        for i in range(2):
            age = ages[i] + 1
            counts[i].append(int(replaced[i].sum()))
            assert (age[replaced[i]] > 3).all()  # immature units are never replaced
            util = eta * utils[i] + (1 - eta) * acts[i].abs().mean(0) * mags[i]
            score = util / (1 - eta ** age.double()).float()
            mature = age > 3
            if replaced[i].any():  # the lowest bias-corrected utilities among mature units
                assert score[replaced[i]].max() <= score[mature & ~replaced[i]].min()
        r0, r1 = replaced
        w0, w1 = d.model.linears[0].weight, d.model.linears[1].weight
        assert (w1[~r1][:, r0] == 0).all()  # outgoing columns of layer-0 replacements (rows kept in layer 1)
        assert (d.optimizer.state[w0]["exp_avg"][r0] == 0).all()
        assert (d.optimizer.state[w0]["exp_avg_sq"][r0] == 0).all()
        assert torch.equal(w0[~r0], before["params"]["linears.0.weight"][~r0])
    assert counts[0] == counts[1] == expected_counts(8, 0.25, 3, 12)
    assert sum(counts[0]) > 0


def test_bias_correction_moves_mean_contribution_into_next_bias():
    m = CBP(replacement_rate=1 / 8, maturity=0, decay=0.5)  # exactly one unit per step
    d = Driver([m], build=mlp_builder(hidden=(8,)))
    for step in range(3):
        d.step(step)
    x, y = d.batch(3)
    d.optimise(x, y)
    f_prev, age_prev = m.mean_act_[0].clone(), m.age_[0].clone()
    act = d.ctx.activations[0]
    head_w, head_b = d.model.head.weight.detach().clone(), d.model.head.bias.detach().clone()
    d.after(3, x)
    (j,) = (m.age_[0] == 0).nonzero().flatten().tolist()
    f = 0.5 * f_prev[j] + 0.5 * act[:, j].mean()
    expected = head_b + head_w[:, j] * f / (1 - 0.5 ** (age_prev[j] + 1).double()).float()
    torch.testing.assert_close(d.model.head.bias.detach(), expected, rtol=1e-6, atol=1e-7)
    assert (d.model.head.weight[:, j] == 0).all()


def test_without_bias_correction_next_bias_is_untouched():
    m = CBP(replacement_rate=1 / 8, maturity=0, bias_correction=False)
    d = Driver([m], build=mlp_builder(hidden=(8,)))
    x, y = d.batch(0)
    d.optimise(x, y)
    b = d.model.head.bias.detach().clone()
    d.after(0, x)
    assert torch.equal(d.model.head.bias, b) and int((m.age_[0] == 0).sum()) == 1


def test_conv_units_with_grouped_outgoing_columns():
    m = CBP(replacement_rate=0.25, maturity=0, decay=0.9)  # 4 channels → one per step
    d = Driver([m], build=conv_builder(), n_in=50)
    x, y = d.batch(0)
    d.optimise(x, y)
    before = snapshot(d.model, d.optimizer)
    act = d.ctx.activations[0]
    d.after(0, x)
    (j,) = (m.age_[0] == 0).nonzero().flatten().tolist()
    cols = slice(25 * j, 25 * j + 25)
    head = d.model.head
    assert (head.weight[:, cols] == 0).all()
    assert (d.optimizer.state[head.weight]["exp_avg"][:, cols] == 0).all()
    others = torch.ones(100, dtype=torch.bool)
    others[cols] = False
    assert torch.equal(head.weight[:, others], before["params"]["head.weight"][:, others])
    f = 0.1 * act[:, j].mean() / (1 - 0.9)  # f = (1 − η)·mean h, bias-corrected by 1 − η¹
    expected = before["params"]["head.bias"] + before["params"]["head.weight"][:, cols].sum(1) * f
    torch.testing.assert_close(head.bias.detach(), expected, rtol=1e-5, atol=1e-6)


def test_sequence_units_without_next_bias():
    m = CBP(replacement_rate=1 / 8, maturity=0, decay=0.9)  # one of 8 units per step
    d = Driver([m], build=ff_builder())
    assert m.next_bias_ == [None]  # wo has no bias: nothing to correct
    x, y = d.batch(0)
    d.optimise(x, y)
    act = d.ctx.activations[0]  # (B, L, units)
    mag = d.model.wo.weight.detach().abs().sum(0)
    before = snapshot(d.model, d.optimizer)
    d.after(0, x)
    expected_util = 0.1 * act.abs().mean((0, 1)) * mag
    (j,) = (m.age_[0] == 0).nonzero().flatten().tolist()
    assert j == int(torch.argmin(expected_util))  # age 1 everywhere: û ∝ u
    assert (d.model.wo.weight[:, j] == 0).all()
    keep = torch.arange(8) != j
    torch.testing.assert_close(m.util_[0][keep], expected_util[keep])
    assert torch.equal(d.model.wi.weight[keep], before["params"]["wi.weight"][keep])
