"""Dormant, dead and active units on planted activations."""

import pytest
import torch
from torch import nn

from plasticlab.diagnostics.activity import (
    ActivationStats,
    active_fraction,
    capture,
    dead_fraction,
    dead_mask,
    dormant_fraction,
    dormant_mask,
)
from plasticlab.units import UnitLayer


def layer_of(act: nn.Module, units: int, act_dim: int = 1) -> UnitLayer:
    return UnitLayer("planted", units, [], [], act, act_dim=act_dim)


def planted_activations() -> torch.Tensor:
    """(4 inputs, 4 units): mean |h| = [1, 1, 0.05, 0]."""
    return torch.tensor([[1.0, -2.0, 0.2, 0.0],
                         [1.0, 0.0, 0.0, 0.0],
                         [-1.0, 2.0, 0.0, 0.0],
                         [1.0, 0.0, 0.0, 0.0]])


def test_redo_dormant_and_dead_on_planted_activations():
    act = nn.Identity()
    with capture([layer_of(act, 4)]) as (st,):
        act(planted_activations())
    a = st.mean_abs()
    assert a.tolist() == pytest.approx([1.0, 1.0, 0.05, 0.0])
    # layer mean 2.05/4 = 0.5125 → threshold 0.05125: unit 2 (0.05) and unit 3 (0) are dormant
    assert dormant_mask(a, 0.1).tolist() == [False, False, True, True]
    assert dormant_fraction(a, 0.1).item() == 0.5
    assert dormant_mask(a, 0.09).tolist() == [False, False, False, True]  # 0.05 > 0.09·0.5125
    assert dead_mask(st.max_abs).tolist() == [False, False, False, True]  # unit 2 fires once: not dead
    assert dead_fraction(st.max_abs).item() == 0.25
    assert dormant_mask(a, 0.0).tolist() == dead_mask(st.max_abs).tolist()  # τ = 0 dormant = dead


def conv_activation() -> torch.Tensor:
    """(B=2, C=3, 4, 4): channel 0 everywhere, channel 1 at one pixel of one image, channel 2 never."""
    h = torch.zeros(2, 3, 4, 4)
    h[:, 0] = 1.0
    h[1, 1, 2, 3] = 5.0
    return h


def conv_stats():
    """Activity statistics of ``conv_activation()`` as a conv unit layer (units on dim 1)."""
    act = nn.Identity()
    with capture([layer_of(act, 3, act_dim=1)]) as (st,):
        act(conv_activation())
    return st


def test_conv_and_sequence_layouts_reduce_over_positions():
    st = conv_stats()
    assert st.mean_abs().tolist() == pytest.approx([1.0, 5 / 32, 0.0])
    assert dead_mask(st.max_abs).tolist() == [False, False, True]

    act = nn.Identity()
    with capture([layer_of(act, 3, act_dim=2)]) as (st,):
        act(conv_activation()[:, :, 2, 1:].transpose(1, 2))  # (B, L=3, units)
    assert st.count == 6
    assert st.mean_abs().tolist() == pytest.approx([1.0, 5 / 6, 0.0])


def test_all_zero_layer_is_all_dormant_and_dead():
    act = nn.Identity()
    with capture([layer_of(act, 5)]) as (st,):
        act(torch.zeros(3, 5))
    assert dormant_fraction(st.mean_abs(), 0.1).item() == 1.0
    assert dead_fraction(st.max_abs).item() == 1.0


def test_chunked_forwards_accumulate_and_hooks_are_removed():
    h = planted_activations()
    act = nn.Identity()
    with capture([layer_of(act, 4)]) as (st,):
        act(h[:1])
        act(h[1:])
    assert st.mean_abs().tolist() == pytest.approx([1.0, 1.0, 0.05, 0.0])
    assert len(act._forward_hooks) == 0


def test_shared_activation_module_is_rejected():
    act = nn.ReLU()
    with pytest.raises(TypeError, match="share"):
        with capture([layer_of(act, 2), layer_of(act, 2)]):
            pass


def test_active_share_on_planted_activations():
    """Non-zero entries per unit: [4, 2, 1, 0] of 4 rows (a negative value is non-zero, hence active)."""
    act = nn.Identity()
    with capture([layer_of(act, 4)]) as (st,):
        act(planted_activations()[:2])  # two forwards accumulate
        act(planted_activations()[2:])
    assert st.active_share().tolist() == [1.0, 0.5, 0.25, 0.0]
    assert active_fraction(st.active_share()).item() == 1.75 / 4
    assert (st.active_share() == 0).tolist() == dead_mask(st.max_abs).tolist()  # dead ⇔ never active


def test_active_share_counts_positions():
    st = conv_stats()
    assert st.active_share().tolist() == pytest.approx([1.0, 1 / 32, 0.0])
    assert active_fraction(st.active_share()).item() == pytest.approx((1 + 1 / 32) / 3)
    with pytest.raises(RuntimeError, match="no activations"):
        ActivationStats().active_share()
