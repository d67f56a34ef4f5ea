"""Unit maps of the conv models: slice sizes, masked re-initialisation, and completeness of the
outgoing side (a unit whose outgoing weights are zero cannot affect the output)."""

import pytest
import torch

from plasticlab.models.cnn import CNNSpec
from plasticlab.models.resnet import ResNet18Spec
from plasticlab.models.vgg import VGGSpec
from plasticlab.units import reinit_units

SPECS = {
    "cnn": (CNNSpec(), (1, 8, 8)),
    "cnn-bn-spatial-hidden": (CNNSpec(channels=[8, 16], norm="batchnorm", spatial=2, hidden=[12]),
                              (1, 28, 28)),
    "cnn-gn": (CNNSpec(channels=[8, 16], norm="groupnorm", groups=4, hidden=[8]), (3, 8, 8)),
    "cnn-ln": (CNNSpec(channels=[8, 16], norm="layernorm", spatial=3), (3, 8, 8)),
    "vgg11": (VGGSpec(depth=11), (3, 32, 32)),
    "resnet18-narrow": (ResNet18Spec(width=8), (3, 16, 16)),
    "resnet18-gn-narrow": (ResNet18Spec(width=8, norm="groupnorm", groups=2), (3, 16, 16)),
}
# outgoing completeness needs units that do not share normalisation statistics (not GN/LN)
INDEPENDENT = ["cnn", "cnn-bn-spatial-hidden", "vgg11", "resnet18-narrow"]


def build(name: str):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    spec, shape = SPECS[name]
    return spec.build(shape, 10), shape


@torch.no_grad()
def perturb(model) -> None:
    """Move every parameter and buffer off its init so a reset is visible."""
    g = torch.Generator().manual_seed(1)
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            t.add_(torch.rand(t.shape, generator=g) + 0.5)


@pytest.mark.parametrize("name", SPECS)
def test_slices_have_count_times_group_entries(name):
    model, shape = build(name)
    layers = model.unit_layers()
    assert layers
    acts = {}
    for u in layers:
        assert u.incoming[0].is_weight and u.out_weight.tensor is not u.in_weight.tensor
        for s in u.incoming + u.outgoing:
            assert s.tensor.shape[s.dim] == u.count * s.group, (u.name, s.tensor.shape)
        u.activation.register_forward_hook(lambda m, i, o, n=u.name: acts.update({n: o.shape}))
    model(torch.zeros(2, *shape))
    for u in layers:
        assert acts[u.name][u.act_dim] == u.count


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("outgoing", ["zero", "init"])
def test_reinit_unit0_changes_only_its_entries(name, outgoing):
    model, _ = build(name)
    perturb(model)
    layers = model.unit_layers()
    for u in (layers[0], layers[-1]):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        mask = torch.zeros(u.count, dtype=torch.bool)
        mask[0] = True
        reinit_units(u, mask, outgoing=outgoing, generator=torch.Generator().manual_seed(2))
        expected = {}
        for s in u.incoming + u.outgoing:
            expected[s.tensor.data_ptr()] = s.unit_mask(mask)
        for key, t in model.state_dict().items():
            changed = t != before[key]
            allowed = expected.get(t.data_ptr(), torch.zeros_like(changed))
            assert not (changed & ~allowed).any(), f"{u.name}: {key} changed outside unit 0"
            if t.data_ptr() in expected:
                # every entry of unit 0 moved (all were perturbed away from their init)
                assert changed[allowed].all(), f"{u.name}: {key} unit 0 not fully reset"
        for s in u.incoming:
            row = s.rows()[0]
            if s.init == "ones":
                assert torch.equal(row, torch.ones_like(row))
            elif s.init == "zeros":
                assert torch.equal(row, torch.zeros_like(row))
            else:
                assert row.abs().max() <= s.scale
        if outgoing == "zero":
            assert not u.out_weight.rows()[0].any()


@pytest.mark.parametrize("name", INDEPENDENT)
def test_zero_outgoing_makes_unit_irrelevant(name):
    model, shape = build(name)
    model.eval()
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(3))
    for u in model.unit_layers():
        mask = torch.zeros(u.count, dtype=torch.bool)
        mask[[0, u.count - 1]] = True
        reinit_units(u, mask, outgoing="zero")
        with torch.no_grad():
            y0 = model(x)
            for s in u.incoming:
                if s.init == "uniform":
                    s.tensor.add_(5.0 * s.unit_mask(mask))
            y1 = model(x)
            u.in_weight.tensor.add_(5.0 * u.in_weight.unit_mask(torch.arange(u.count) == 1))
            y2 = model(x)
        assert torch.equal(y0, y1), f"{u.name}: output depends on a unit with zero outgoing weights"
        assert not torch.allclose(y1, y2), f"{u.name}: test is blind (unit 1 change had no effect)"
