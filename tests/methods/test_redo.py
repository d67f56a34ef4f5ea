"""ReDo on planted dormant units: exactly their entries change, as the definition says.

The steps are the engine's (``train_step`` through ``EagerStep`` / ``loop.run``); ``spy`` looks at the
state right before and right after the engine's call of ``after_step`` or ``on_task_end``."""

import torch

from plasticlab.methods.common import lowest_mask
from plasticlab.methods.redo import dormant_mask, redo_scores
from plasticlab.units import Slice
from tests.methods.methods_driver import conv_builder, ff_builder, mlp_builder, run, snapshot, spy, step, tiny


def before_after(s, m) -> dict:
    """Spy on ``m.after_step``: ``seen["before"]``/``["after"]`` are snapshots around its latest call,
    ``seen["acts"]`` the activations it was called with."""
    seen = {}
    spy(m, "after_step",
        before=lambda k, x: seen.update(before=snapshot(s.model, s.optimizer), acts=list(s.ctx.activations)),
        after=lambda k, x: seen.update(after=snapshot(s.model, s.optimizer)))
    return seen


def test_scores_are_normalised_mean_abs_activation():
    a = torch.tensor([[0.0, 1.0, -3.0], [0.0, 3.0, 1.0]])  # mean |h| = 0, 2, 2 → layer mean 4/3
    torch.testing.assert_close(redo_scores(a, 1), torch.tensor([0.0, 1.5, 1.5]))
    conv = torch.zeros(2, 3, 2, 2)
    conv[:, 1] = 1.0
    torch.testing.assert_close(redo_scores(conv, 1), torch.tensor([0.0, 3.0, 0.0]))


def test_lowest_mask_picks_lowest_eligible_scores():
    score = torch.tensor([0.3, 0.1, 0.2, 0.0, 0.5])
    eligible = torch.tensor([True, True, True, False, True])
    assert lowest_mask(score, eligible, 2).tolist() == [False, True, True, False, False]
    assert lowest_mask(score, eligible, torch.tensor(9.0)).tolist() == eligible.tolist()
    assert not lowest_mask(score, eligible, 0).any()


def test_planted_dormant_unit_is_reset_and_nothing_else_changes():
    s = tiny({"name": "redo", "every": 5, "tau": 0.1}, factory=mlp_builder(hidden=(8,)))
    m = s.methods[0]
    lin0, norm0, lin1 = s.model.linears[0], s.model.norms[0], s.model.head
    with torch.no_grad():  # unit 3 of hidden0: LayerNorm gain 0, bias −1 → ReLU output 0 on every input
        norm0.weight[3] = 0.0
        norm0.bias[3] = -1.0
    seen = before_after(s, m)
    step(s, 1)  # Adam moments become non-zero; no ReDo step (the step numbered 1 is the run's 2nd; 5 ∤ 2)
    assert "before" not in seen
    step(s, 4)  # the 5th step: ReDo checks
    before, after = seen["before"], seen["after"]
    masks = [dormant_mask(layer, a, 0.1, 1.0) for layer, a in zip(s.unit_map, seen["acts"], strict=True)]
    assert masks[0].nonzero().flatten().tolist() == [3]
    assert before["opt"]["linears.0.weight"]["exp_avg"][3].abs().sum() > 0

    g = s.ctx.generator("redo", "step", 4)
    fresh_w = Slice(lin0.weight, 0, "uniform", 6**-0.5).draw(g)
    fresh_b = Slice(lin0.bias, 0, "uniform", 6**-0.5).draw(g)
    changed = {
        "linears.0.weight": (slice(3, 4), slice(None)),
        "linears.0.bias": (slice(3, 4),),
        "norms.0.weight": (slice(3, 4),),
        "norms.0.bias": (slice(3, 4),),
        "head.weight": (slice(None), slice(3, 4)),
    }
    torch.testing.assert_close(lin0.weight[3], fresh_w[3], rtol=0, atol=0)
    torch.testing.assert_close(lin0.bias[3], fresh_b[3], rtol=0, atol=0)
    assert norm0.weight[3] == 1.0 and norm0.bias[3] == 0.0
    assert (lin1.weight[:, 3] == 0).all()
    for name, value in before["params"].items():
        keep = torch.ones_like(value, dtype=torch.bool)
        if name in changed:
            keep[changed[name]] = False
            for k in ("exp_avg", "exp_avg_sq"):
                assert (after["opt"][name][k][~keep] == 0).all(), (name, k)
                assert torch.equal(after["opt"][name][k][keep], before["opt"][name][k][keep]), (name, k)
        assert torch.equal(after["params"][name][keep], value[keep]), name
        if name not in changed and name in before["opt"]:
            for k, v in before["opt"][name].items():
                assert torch.equal(after["opt"][name][k], v), (name, k)


def test_max_fraction_resets_the_lowest_scores_first():
    s = tiny({"name": "redo", "every": 1, "tau": 0.1, "max_fraction": 0.25})  # at most 2 of 8 units
    m = s.methods[0]
    norm0 = s.model.norms[0]
    with torch.no_grad():
        norm0.weight[[1, 4, 6]] = 0.0
        norm0.bias[1], norm0.bias[4], norm0.bias[6] = 0.02, -1.0, 0.01  # scores: 6 < 1, and 4 is 0
    seen = before_after(s, m)
    step(s, 0)
    act = seen["acts"][0]
    score = redo_scores(act, 1)
    assert (score[[1, 4, 6]] <= 0.1).all() and score[4] < score[6] < score[1]
    assert dormant_mask(s.unit_map[0], act, 0.1, 0.25).nonzero().flatten().tolist() == [4, 6]
    assert norm0.weight[4] == 1.0 and norm0.weight[6] == 1.0
    assert norm0.weight[1] == seen["before"]["params"]["norms.0.weight"][1]


def test_conv_channel_with_grouped_outgoing_columns():
    s = tiny({"name": "redo", "every": 1, "tau": 0.1}, factory=conv_builder())
    m = s.methods[0]
    conv, head = s.model.conv, s.model.head
    with torch.no_grad():
        conv.weight[2] = 0.0
        conv.bias[2] = -1.0
    seen = before_after(s, m)
    step(s, 0)
    before = seen["before"]
    g = s.ctx.generator("redo", "step", 0)
    fresh = s.unit_map[0].incoming[0].draw(g)
    assert torch.equal(conv.weight[2], fresh[2])
    assert torch.equal(conv.weight[[0, 1, 3]], before["params"]["conv.weight"][[0, 1, 3]])
    assert (head.weight[:, 50:75] == 0).all()
    assert torch.equal(head.weight[:, :50], before["params"]["head.weight"][:, :50])
    assert torch.equal(head.weight[:, 75:], before["params"]["head.weight"][:, 75:])
    assert (s.optimizer.state[head.weight]["exp_avg"][:, 50:75] == 0).all()
    assert (s.optimizer.state[conv.weight]["exp_avg_sq"][2] == 0).all()
    assert torch.equal(head.bias, before["params"]["head.bias"])


def planted_run(at_task_end: bool) -> tuple[list, list, torch.nn.Module]:
    """One task of 5 steps with ReDo every 3 steps; unit 0 of hidden1 is made dormant right after the
    only check (after the 3rd step, numbered 2), so only a check at the task end can find it."""
    s = tiny({"name": "redo", "every": 3, "tau": 0.1, "at_task_end": at_task_end}, tasks=1, steps_per_task=5)
    m = s.methods[0]
    norm1 = s.model.norms[1]

    def plant(k, x):
        if k == 2:
            with torch.no_grad():
                norm1.weight[0] = 0.0
                norm1.bias[0] = -1.0

    checks = spy(m, "after_step", after=plant)
    ends = spy(m, "on_task_end")
    run(s)
    return checks, ends, s.model


def test_at_task_end_and_cadence():
    checks, ends, model = planted_run(at_task_end=True)
    assert checks == [2] and ends == [0]  # the engine's cadence: after the 3rd of 5 steps (numbered 0–4)
    assert model.norms[1].weight[0] == 1.0 and model.norms[1].bias[0] == 0.0  # reset at the task end
    _, _, model = planted_run(at_task_end=False)
    assert abs(float(model.norms[1].weight[0].detach())) < 0.1 and model.norms[1].bias[0] < -0.9  # still dormant


def test_sequence_units_act_dim_2():
    a = torch.zeros(2, 3, 4)  # (B, L, units)
    a[..., 1] = 2.0
    a[0, 0, 3] = -6.0
    # mean |h| per unit over (B, L) = 0, 2, 0, 1 → layer mean 0.75
    torch.testing.assert_close(redo_scores(a, 2), torch.tensor([0.0, 2.0, 0.0, 1.0]) / 0.75)
    s = tiny({"name": "redo", "every": 1, "tau": 0.1}, factory=ff_builder())
    m = s.methods[0]
    with torch.no_grad():
        s.model.wi.weight[5] = 0.0  # h_5 = ReLU(0) = 0 at every position
    seen = before_after(s, m)
    step(s, 0)
    before = seen["before"]
    assert (s.model.wi.weight[5] != 0).all() and (s.model.wo.weight[:, 5] == 0).all()
    keep = torch.arange(8) != 5
    assert torch.equal(s.model.wi.weight[keep], before["params"]["wi.weight"][keep])
    assert torch.equal(s.model.wo.weight[:, keep], before["params"]["wo.weight"][:, keep])
