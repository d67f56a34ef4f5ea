"""Automatic unit maps (plasticlab.unit_discovery): equal to the hand-written maps of the built-in
models, right on three custom modules written without plasticlab, usable by the unit methods and
the diagnostics there, and a one-line reason for every structure they cannot read."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from plasticlab import registry, units
from plasticlab.config import DiagnosticsConfig
from plasticlab.diagnostics import measure
from plasticlab.diagnostics.rank import effective_rank, singular_values
from plasticlab.models.cnn import ConvNet
from plasticlab.models.mlp import MLP
from plasticlab.models.resnet import ResNet
from plasticlab.registry import UserError
from plasticlab.unit_discovery import (
    _Analysis,
    capture_forward,
    capture_fx,
    discover,
    features,
    head_slices,
    measured_init,
    partial_map_note,
)
from tests.methods.methods_driver import BATCH, N_OUT, run, step, tiny

# --- three custom models: plain torch, no plasticlab base class or method --------------------------

def gelu_mlp() -> nn.Sequential:
    """(B, 6) → Linear(6→16) → GELU → Linear(16→16) → GELU → Linear(16→3)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 3))


class GroupNormConv(nn.Module):
    """(B, 50) viewed as (B, 2, 5, 5) → conv(2→4)·GroupNorm(2)·ReLU → conv(4→6)·GroupNorm(3)·SiLU →
    adaptive 2×2 average pool → flatten (24) → Linear(24→3)."""

    n_in = 50

    def __init__(self):
        super().__init__()
        self.conv1, self.gn1, self.act1 = nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU()
        self.conv2, self.gn2, self.act2 = nn.Conv2d(4, 6, 3, padding=1), nn.GroupNorm(3, 6), nn.SiLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        h = self.act1(self.gn1(self.conv1(x.view(-1, 2, 5, 5))))
        return self.fc(torch.flatten(self.pool(self.act2(self.gn2(self.conv2(h)))), 1))


class PreNormMLPBlock(nn.Module):
    """x + dropout(fc2(GELU(fc1(LayerNorm(x))))), the MLP half of a pre-norm transformer block."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.norm, self.fc1, self.act = nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU()
        self.fc2, self.drop = nn.Linear(hidden, d), nn.Dropout(0.1)

    def forward(self, x):
        return x + self.drop(self.fc2(self.act(self.fc1(self.norm(x)))))


class TinyTransformer(nn.Module):
    """(B, 8) → 2 tokens of 4 → Linear embed (4→8) → 2 pre-norm MLP blocks (8→16→8) → LayerNorm →
    mean over tokens → Linear(8→3)."""

    n_in = 8

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.blocks = nn.ModuleList([PreNormMLPBlock(8, 16) for _ in range(2)])
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.embed(x.view(x.shape[0], 2, 4))
        for b in self.blocks:
            h = b(h)
        return self.out(self.norm(h).mean(1))


CUSTOM = {"gelu-mlp": gelu_mlp, "groupnorm-conv": GroupNormConv, "prenorm-transformer": TinyTransformer}


def builder(make):
    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return make()

    return build


def example(model: nn.Module, n: int = 5) -> torch.Tensor:
    return torch.randn(n, getattr(model, "n_in", 6), generator=torch.Generator().manual_seed(0))


# --- (a) the automatic map equals the hand-written one ------------------------------------------------

def act_ndims(model: nn.Module, layers: list[units.UnitLayer], *args) -> list[int]:
    """Dimensions of each layer's activation in a forward of ``args``."""
    got = {}

    def hook(m, _a, out):
        got[id(m)] = out.ndim

    handles = [la.activation.register_forward_hook(hook) for la in layers]
    with torch.no_grad():
        model.eval()(*args)
    for h in handles:
        h.remove()
    return [got[id(la.activation)] for la in layers]


def assert_same_map(auto: list[units.UnitLayer], hand: list[units.UnitLayer], ndims: list[int]) -> None:
    """Same units, tensors (by identity), axes, groups, init kinds and scales, activation modules.
    Differences by design: names (auto: the producer's module path), and ``act_dim`` of Linear units
    (auto: −1, the last axis; the hand maps count it from the front) — the same axis."""
    assert len(auto) == len(hand) == len(ndims)
    for a, h, ndim in zip(auto, hand, ndims, strict=True):
        assert a.count == h.count and a.activation is h.activation
        assert a.act_dim % ndim == h.act_dim % ndim
        for sa, sh in zip(a.incoming + a.outgoing, h.incoming + h.outgoing, strict=True):
            assert sa.tensor is sh.tensor
            assert (sa.dim, sa.init, sa.group, sa.is_weight) == (sh.dim, sh.init, sh.group, sh.is_weight)
            assert sa.scale == pytest.approx(sh.scale, rel=1e-12)
        assert len(a.incoming) == len(h.incoming)


@pytest.mark.parametrize("norm", ["layernorm", "batchnorm", "none"])
def test_auto_map_equals_mlp(norm):
    model = MLP(6, [16, 8], 3, norm=norm)
    amap = discover(model)
    assert amap.how == "fx" and amap.skipped == [] and amap.head == "head"
    assert_same_map(amap.layers, model.unit_layers(), act_ndims(model, amap.layers, torch.zeros(2, 6)))
    assert [layer.name for layer in amap.layers] == ["linears.0", "linears.1"]


@pytest.mark.parametrize("norm", ["groupnorm", "batchnorm", "layernorm"])
def test_auto_map_equals_cnn(norm):
    model = ConvNet(3, [8, 16], 5, pool_after=[True, True], norm=norm, groups=4, spatial=2, hidden=[12])
    assert "cannot trace" in discover(model).how  # why: HalvingPool branches on the input's shape
    x = torch.zeros(2, 3, 8, 8)
    amap = discover(model, x)
    assert amap.how == "forward" and amap.skipped == []
    assert_same_map(amap.layers, model.unit_layers(), act_ndims(model, amap.layers, x))
    assert amap.layers[1].outgoing[0].group == 4  # 16 channels of 2×2 → Linear(64 → 12)


def test_recorded_forward_changes_nothing():
    model = ConvNet(3, [8], 5, pool_after=[True], norm="batchnorm")
    model.norms[0].eval()  # a mixed mode is kept
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert len(discover(model, torch.randn(4, 3, 8, 8)).layers) == 1
    assert model.training and not model.norms[0].training and model.convs[0].training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_auto_map_equals_vgg():
    model = registry.MODELS["vgg"](depth=11).build((3, 8, 8), 10)
    x = torch.zeros(1, 3, 8, 8)
    amap = discover(model, x)
    assert amap.skipped == []
    assert_same_map(amap.layers, model.unit_layers(), act_ndims(model, amap.layers, x))


def test_auto_map_equals_resnet18():
    """The hand map leaves out the residual stream (models/resnet.py): the auto map skips the same
    activations, each with its reason."""
    model = ResNet(3, 10, width=8, norm="groupnorm", groups=4)
    amap = discover(model)
    assert amap.how == "fx"
    assert_same_map(amap.layers, model.unit_layers(), act_ndims(model, amap.layers, torch.zeros(2, 3, 8, 8)))
    reasons = dict(amap.skipped)
    assert len(reasons) == 1 + 8  # the stem and every block's output
    assert reasons["conv1"] == ("the activation is read by call 'add', not a Linear/Conv "
                                "(unit methods need every reader's weights)")
    assert reasons["blocks.3.act2"].startswith("the activation's input is call 'add'")
    blocks = ", ".join(f"'blocks.{i}.act2'" for i in range(8))
    assert amap.reason == f"layer 'conv1': {reasons['conv1']}; layers {blocks}: {reasons['blocks.3.act2']}"


def test_auto_map_of_t5_feed_forwards():
    """T5's own init is normal, not PyTorch's default: the default auto map differs in its init
    (documented), ``init="measured"`` reads T5's kinds and scales off the fresh weights."""
    pytest.importorskip("transformers")
    from plasticlab.language import tokenizer as tok
    from plasticlab.models.t5 import T5Spec

    torch.manual_seed(0)
    model = T5Spec(d_model=64, d_ff=256, heads=4, layers=2).build((10,), tok.VOCAB_SIZE)
    x, y = tok.encode_batch(["abc de", "fgh"], 8), tok.encode_batch(["bd", "xy"], 5)
    hand = model.unit_layers()
    measured = discover(model, (x, y), init="measured")
    assert measured.how == "forward" and measured.skipped == []
    assert measured.head is None  # why: the lm_head is tied to the input embedding (T5's own head_slices says so)
    assert len(measured.layers) == len(hand) == 3
    for a, h in zip(measured.layers, hand, strict=True):
        assert a.count == h.count == 256 and a.activation is h.activation and a.act_dim % 3 == h.act_dim
        for sa, sh in zip(a.incoming + a.outgoing, h.incoming + h.outgoing, strict=True):
            assert sa.tensor is sh.tensor and (sa.dim, sa.init) == (sh.dim, sh.init) == (sa.dim, "normal")
            assert sa.scale == pytest.approx(sh.scale, rel=0.05)
    default = discover(model, (x, y)).layers[0]
    assert (default.in_weight.init, default.in_weight.scale) == ("uniform", pytest.approx(64 ** -0.5))
    exact = {n: ("normal", 64 ** -0.5) for n, _ in model.named_parameters() if n.endswith("wi.weight")}
    assert discover(model, (x, y), init=exact).layers[2].in_weight.scale == 64 ** -0.5


def test_measured_init_tells_uniform_from_normal():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    nn.init.zeros_(lin.bias)
    got = measured_init(nn.Sequential(lin))
    assert got["0.weight"] == ("uniform", pytest.approx(1 / 8, rel=0.05)) and got["0.bias"] == ("zeros", 0.0)
    nn.init.normal_(lin.weight, std=0.3)
    assert measured_init(nn.Sequential(lin))["0.weight"] == ("normal", pytest.approx(0.3, rel=0.05))


def test_unit_init_attribute_reaches_units_build():
    torch.manual_seed(0)
    model = gelu_mlp()
    nn.init.normal_(model[1].weight, std=0.05)
    assert units.build(model)[0].in_weight.init == "uniform"
    model.unit_init = "measured"
    w = units.build(model)[0].in_weight
    assert (w.init, w.scale) == ("normal", pytest.approx(0.05, rel=0.3))  # 96 entries: a rough estimate
    model.unit_init = {"1.weight": ("normal", 0.05)}
    assert (units.build(model)[0].in_weight.init, units.build(model)[0].in_weight.scale) == ("normal", 0.05)
    with pytest.raises(UserError, match="^unit map: init override 'fc.weight' is not a parameter of Sequential$"):
        discover(model, init={"fc.weight": ("normal", 1.0)})
    with pytest.raises(UserError, match="^unit map: init override '1.weight': 'normal' is not"):
        discover(model, init={"1.weight": "normal"})
    with pytest.raises(UserError, match="^unit map: init='normal': use 'default'"):
        discover(model, init="normal")


def test_explicit_map_wins():
    model = MLP(6, [16], 3)
    model.unit_layers = lambda: []  # a model's own map is used as it is, even an empty one
    assert units.build(model) == []
    assert units.why_empty(model) == "MLP.unit_layers() returned no layer"
    assert len(units.build(gelu_mlp())) == 2


# --- (b) custom models: the map is right ------------------------------------------------------------

def outputs_and_acts(model: nn.Module, layer: units.UnitLayer, x: torch.Tensor, edit=None):
    """(model output, the layer's activation) of x; ``edit`` may replace the activation."""
    got = []

    def hook(_m, _a, out):
        got.append(out)
        return edit(out) if edit is not None else None

    handle = layer.activation.register_forward_hook(hook)
    try:
        return model(x), got[0]
    finally:
        handle.remove()


def same_norm_group(model: nn.Module, layer: units.UnitLayer, u: int) -> torch.Tensor:
    """Units whose activation may change with unit u's: u alone, or u's GroupNorm group (whose
    statistics u's values enter)."""
    gn = [m for m in model.modules()
          if isinstance(m, nn.GroupNorm) and any(s.tensor is m.weight for s in layer.incoming)]
    size = layer.count // gn[0].num_groups if gn else 1
    return torch.arange(layer.count) // size == u // size


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_custom_map_slices_are_the_units(name):
    """For every unit u: re-drawing u's incoming slices changes only u's activation (and, under a
    GroupNorm, its group's); with u's
    outgoing slices zeroed, the output no longer depends on u's activation (and does before)."""
    torch.manual_seed(0)
    model = CUSTOM[name]().eval()
    x = example(model)
    layers = units.build(model)
    assert layers and all(layer.count > 1 for layer in layers)
    g = torch.Generator().manual_seed(1)
    for layer in layers:
        for u in range(layer.count):
            mask = torch.arange(layer.count) == u
            with torch.no_grad():
                y0, a0 = outputs_and_acts(model, layer, x)
                units.reinit_units(layer, mask, outgoing="keep", generator=g)
                y1, a1 = outputs_and_acts(model, layer, x)
            changed = (a1 != a0).movedim(layer.act_dim, -1).flatten(0, -2).any(0)
            assert changed[u] and not (changed & ~same_norm_group(model, layer, u)).any()

            def bump(a, u=u, dim=layer.act_dim, n=layer.count):
                return a + 5.0 * (torch.arange(n) == u).view([-1] + [1] * (a.ndim - 1 - dim % a.ndim))

            with torch.no_grad():
                plain, _ = outputs_and_acts(model, layer, x)
                assert not torch.allclose(outputs_and_acts(model, layer, x, bump)[0], plain)
                for s in layer.outgoing:
                    s.tensor.masked_fill_(s.unit_mask(mask), 0.0)
                zeroed, _ = outputs_and_acts(model, layer, x)
                assert torch.allclose(outputs_and_acts(model, layer, x, bump)[0], zeroed, atol=1e-6)


def test_custom_maps_in_detail():
    mlp = gelu_mlp()
    a, b = units.build(mlp)
    assert (a.name, a.count, a.act_dim, a.activation) == ("1", 16, -1, mlp[2])
    assert [s.tensor for s in a.incoming] == [mlp[1].weight, mlp[1].bias]
    assert a.out_weight.tensor is mlp[3].weight and a.out_weight.dim == 1
    assert b.out_weight.tensor is mlp[5].weight and b.in_weight.scale == 1 / 4
    conv = GroupNormConv()
    c1, c2 = units.build(conv)
    assert [s.tensor for s in c1.incoming] == [conv.conv1.weight, conv.conv1.bias, conv.gn1.weight, conv.gn1.bias]
    assert [s.init for s in c1.incoming] == ["uniform", "uniform", "ones", "zeros"]
    assert c1.in_weight.scale == 1 / math.sqrt(2 * 9) and c1.out_weight.tensor is conv.conv2.weight
    assert (c2.out_weight.tensor, c2.out_weight.group, c2.out_weight.scale) == (conv.fc.weight, 4, 1 / math.sqrt(24))
    tr = TinyTransformer()
    layers = units.build(tr)
    assert [layer.name for layer in layers] == ["blocks.0.fc1", "blocks.1.fc1"]
    assert [s.tensor for s in layers[1].incoming] == [tr.blocks[1].fc1.weight, tr.blocks[1].fc1.bias]
    assert layers[1].out_weight.tensor is tr.blocks[1].fc2.weight and layers[1].activation is tr.blocks[1].act
    assert [s.tensor for s in head_slices(tr)] == [tr.out.weight, tr.out.bias]


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_fx_and_recorded_forward_agree(name):
    """The two graph captures give the same map, head and module order on the custom models."""
    model = CUSTOM[name]()
    amap = discover(model)
    assert amap.how == "fx"
    fx_ops, fw_ops = capture_fx(model), capture_forward(model, example(model))
    assert [op.name for op in fx_ops if op.kind == "module"] == [op.name for op in fw_ops if op.kind == "module"]
    recorded = _Analysis(model, fw_ops, {}).run("forward")
    assert (recorded.head, recorded.skipped) == (amap.head, amap.skipped)
    assert [(la.name, la.act_dim) for la in recorded.layers] == [(la.name, la.act_dim) for la in amap.layers]
    assert_same_map(recorded.layers, amap.layers, [3] * len(amap.layers))


class ConvReadout(nn.Module):
    """conv(2→4)·ReLU, then the 4 channels of 5×5 reach a Linear through one of several spellings."""

    n_in = 50
    READ = {"flatten": lambda h: h.flatten(1), "torch.flatten": lambda h: torch.flatten(h, 1),
            "view": lambda h: h.view(h.size(0), -1), "view-1": lambda h: h.view(-1, 100),
            "reshape": lambda h: h.reshape(h.shape[0], -1), "nn.Flatten": nn.Flatten(),
            "mean": lambda h: h.mean((2, 3)), "mean-neg": lambda h: h.mean(dim=(-2, -1))}

    def __init__(self, read: str):
        super().__init__()
        self.read = self.READ[read]
        self.conv, self.act = nn.Conv2d(2, 4, 3, padding=1), nn.ReLU()
        self.fc = nn.Linear(4 if read.startswith("mean") else 100, 3)

    def forward(self, x):
        return self.fc(self.read(self.act(self.conv(x.view(-1, 2, 5, 5)))))


@pytest.mark.parametrize("read", sorted(ConvReadout.READ))
def test_conv_readouts(read):
    """Each spelling is read by both graph captures: channel c owns 25 columns after a flatten,
    one after a spatial mean."""
    model = ConvReadout(read)
    assert discover(model).how == "fx"
    recorded = _Analysis(model, capture_forward(model, example(model)), {}).run("forward")
    for amap in (discover(model), recorded):
        (layer,) = amap.layers
        assert layer.out_weight.tensor is model.fc.weight and layer.in_weight.tensor is model.conv.weight
        assert layer.out_weight.group == (1 if read.startswith("mean") else 25)


class PoolBeforeActivation(nn.Module):
    """conv → max-pool → BatchNorm → ReLU → conv → flatten → Linear; with ``linear``, a Linear
    whose 8 outputs are max-pooled in pairs before the ReLU (which mixes units: refused)."""

    n_in = 50

    def __init__(self, linear: bool = False):
        super().__init__()
        self.linear = linear
        self.conv1, self.pool, self.bn = nn.Conv2d(2, 4, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(4)
        self.act, self.conv2, self.fc = nn.ReLU(), nn.Conv2d(4, 3, 1), nn.Linear(12, 3)
        self.lin1, self.lin2 = nn.Linear(25, 8), nn.Linear(4, 3)

    def forward(self, x):
        if self.linear:
            return self.lin2(self.act(F.max_pool1d(self.lin1(x.view(-1, 2, 25)), 2))).mean(1)
        return self.fc(self.conv2(self.act(self.bn(self.pool(self.conv1(x.view(-1, 2, 5, 5)))))).flatten(1))


def test_pooling_before_the_activation():
    model = PoolBeforeActivation()
    (layer,) = discover(model).layers
    got = [s.tensor for s in layer.incoming[:4]]
    assert got == [model.conv1.weight, model.conv1.bias, model.bn.weight, model.bn.bias]
    assert layer.out_weight.tensor is model.conv2.weight
    linear = PoolBeforeActivation(linear=True)
    for amap in (discover(linear), _Analysis(linear, capture_forward(linear, example(linear)), {}).run("forward")):
        assert amap.layers == [] and amap.skipped == [
            ("lin1", "pooling between module 'lin1' (Linear) and the activation mixes its units")]


# --- (b) methods and diagnostics on the custom models ------------------------------------------------

@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_redo_cbp_and_reset_frozen_act_on_custom_models(name):
    make = builder(CUSTOM[name])

    def reset_all(s) -> None:
        """After one step every unit was reset: the last layer's outgoing weights are 0 (earlier
        layers' outgoing weights are the next layer's re-drawn incoming ones) and every incoming
        weight is a fresh draw (the ``tiny`` learning rate could not have moved it that far)."""
        before = [layer.in_weight.tensor.clone() for layer in s.unit_map]
        step(s, 1)
        assert all((o.tensor == 0).all() for o in s.unit_map[-1].outgoing)
        for w, layer in zip(before, s.unit_map, strict=True):
            assert ((layer.in_weight.tensor - w).abs() > 0.02).float().mean() > 0.5

    # ReDo with τ above every score; CBP replacing every mature unit (maturity 0) each step
    reset_all(tiny({"name": "redo", "every": 1, "tau": 1e9}, factory=make, lr=1e-3))
    reset_all(tiny({"name": "cbp", "replacement_rate": 1.0, "maturity": 0}, factory=make, lr=1e-3))
    # reset-frozen: a unit with all weights zero is frozen, and re-drawn at the next task start
    s = tiny({"name": "reset-frozen", "tasks": "all"}, factory=make)
    layer = s.unit_map[0]
    with torch.no_grad():
        for sl in layer.incoming + layer.outgoing:
            if sl.is_weight:
                sl.tensor.masked_fill_(sl.unit_mask(torch.arange(layer.count) == 0), 0.0)
    s.methods[0].on_task_start(0)
    assert all(sl.rows()[0].abs().max() > 0 for sl in layer.incoming + layer.outgoing if sl.is_weight)


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_diagnostics_on_custom_models(name):
    """Known answers: units with zero weights and a bias of −30 are dormant, dead and frozen;
    the effective rank is that of the head's input."""
    torch.manual_seed(0)
    model = CUSTOM[name]()
    layers = units.build(model)
    layer = layers[0]
    dead = torch.arange(layer.count) < 2
    with torch.no_grad():
        for s in layer.incoming + layer.outgoing:
            if s.is_weight:
                s.tensor.masked_fill_(s.unit_mask(dead), 0.0)
        for s in layer.incoming:  # bias −30, norm bias −30 (a norm of a constant input is 0)
            if not s.is_weight and s.init in ("uniform", "zeros") and s.tensor.requires_grad:
                s.tensor.masked_fill_(s.unit_mask(dead), -30.0)
    x = example(model, 32)
    y = torch.randint(0, N_OUT, (32,), generator=torch.Generator().manual_seed(1))

    def loss(m, xb, yb):
        out = m(xb)
        return F.cross_entropy(out, yb), (out.argmax(1) == yb).sum(), len(yb)

    row = measure(model, layers, x, y, loss, DiagnosticsConfig())
    per = row["layers"][layer.name]
    n_units = sum(la.count for la in layers)
    assert per["dormant_fraction"] == pytest.approx(2 / layer.count)
    assert per["frozen_fraction"] == pytest.approx(2 / layer.count)
    assert row["dormant_fraction"] >= 2 / n_units and row["frozen_fraction"] == pytest.approx(2 / n_units)
    head = model.get_submodule(discover(model).head)
    got = []
    handle = head.register_forward_pre_hook(lambda _m, a: got.append(a[0]))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    expect = effective_rank(singular_values(got[0].reshape(-1, got[0].shape[-1]))).item()
    assert row["effective_rank"] == pytest.approx(expect, rel=1e-9) and row["effective_rank"] > 1


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_engine_diagnostics_rows_on_custom_models(name):
    s = tiny(factory=builder(CUSTOM[name]), overrides=("diagnostics.every=task",))
    ends = [r for r in run(s) if r["event"] == "task_end"]
    assert len(ends) == 2
    for r in ends:
        assert set(r["layers"]) == {layer.name for layer in s.unit_map}
        assert all(r[k] is not None for k in ("dormant_fraction", "frozen_fraction", "effective_rank", "srank"))


@pytest.mark.parametrize("name", sorted(CUSTOM))
@pytest.mark.parametrize("method", sorted(registry.METHODS))
def test_every_method_runs_or_refuses_on_custom_models(name, method):
    """Every registered method, in its busy settings, trains a custom model through the engine or
    refuses it at setup with a one-line UserError; the unit and head methods must work."""
    section = {"name": method, **registry.METHODS[method].busy}
    try:
        s = tiny(section, factory=builder(CUSTOM[name]))
    except UserError as e:
        assert "\n" not in str(e) and method not in ("redo", "cbp", "reset-frozen", "head-reset")
        return
    run(s)
    assert all(torch.isfinite(p).all() for p in s.model.parameters())


# --- (c) refusals: one line naming the layer and why ---------------------------------------------------

class TwoReaders(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.fc2(h) + self.fc3(h)


class Sliced(TwoReaders):
    def __init__(self):
        super().__init__()
        self.fc2, self.fc3 = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.fc2(h[:, :4]) + self.fc3(h[:, 4:])


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2, self.head = nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 3)
        self.fc2.weight = self.fc1.weight

    def forward(self, x):
        return self.head(self.fc2(self.act(self.fc1(x))))


class Grouped(nn.Module):
    n_in = 50

    def __init__(self):
        super().__init__()
        self.conv1, self.act = nn.Conv2d(2, 4, 3, padding=1, groups=2), nn.ReLU()
        self.conv2, self.head = nn.Conv2d(4, 4, 1), nn.Linear(100, 3)

    def forward(self, x):
        return self.head(self.conv2(self.act(self.conv1(x.view(-1, 2, 5, 5)))).flatten(1))


class SharedActivation(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.relu = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3), nn.ReLU()

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class CReLU(nn.Module):
    """Concatenated ReLU: two outputs per unit."""

    def forward(self, x):
        return torch.cat([F.relu(x), F.relu(-x)], dim=-1)


class WithCReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(6, 8), CReLU(), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Branchy(nn.Module):
    """Python control flow on a tensor value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.fc2(h) if x.sum() > -1e9 else -self.fc2(h)


REFUSALS = {
    TwoReaders: "layer 'fc1': the activation is read by 2 layers ('fc2', 'fc3'); a unit needs one consumer",
    Sliced: "layer 'fc1': the activation is read by call 'getitem', not a Linear/Conv (unit methods need every "
            "reader's weights)",
    Functional: "layer 'fc1': its output goes through the function relu(), not an activation module; use a module "
                "(e.g. nn.ReLU()) or define unit_layers() (module 'fc1' (Linear))",
    Tied: "layer 'fc1': layer 'fc1' has weights tied to 'fc2.weight'",
    Grouped: "layer 'conv1': layer 'conv1' is a grouped convolution (groups=2)",
    SharedActivation: "layers 'fc1', 'fc2': activation 'relu' is called 2 times (shared by several layers); give "
                      "each layer its own module",
    WithCReLU: "layer 'fc1': its output goes through the function relu(), not an activation module; use a module "
               "(e.g. nn.ReLU()) or define unit_layers() (module 'fc1' (Linear))",
}


@pytest.mark.parametrize("cls", list(REFUSALS), ids=lambda c: c.__name__)
def test_refusals_name_the_layer_and_why(cls):
    model = cls()
    amap = discover(model)
    assert amap.how == "fx" and amap.layers == [] and amap.reason == REFUSALS[cls]
    recorded = _Analysis(model, capture_forward(model, example(model)), {}).run("forward")
    assert recorded.layers == [] and recorded.reason == REFUSALS[cls]
    s_model = builder(cls)
    for method in ("redo", "cbp", "reset-frozen"):
        with pytest.raises(UserError) as e:
            tiny({"name": method}, factory=s_model)
        assert str(e.value) == f"method {method}: model {cls.__name__} has no unit layers ({REFUSALS[cls]})"


def test_untraceable_model_needs_an_example_input():
    model = Branchy()
    amap = discover(model)
    assert amap.layers == [] and amap.reason.startswith("torch.fx cannot trace Branchy (TraceError: ")
    assert amap.reason.endswith("; pass an example input to record a forward instead") and "\n" not in amap.reason
    assert [layer.name for layer in discover(model, torch.zeros(2, 6)).layers] == ["fc1"]
    s = tiny({"name": "redo", "every": 1, "tau": 1e9}, factory=builder(Branchy))  # the engine passes one
    step(s, 1)
    assert (model.fc2.weight != 0).all() and (s.model.fc2.weight == 0).all()


class NoHead(nn.Module):
    """Logits x·W with a bare parameter: no unit layer, no Linear head."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 3))

    def forward(self, x):
        return x @ self.w


def test_head_through_output_functions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.LogSoftmax(-1))
    assert discover(model).head == "2" and [s.tensor for s in head_slices(model)] == [model[2].weight, model[2].bias]
    x = torch.randn(4, 6)
    assert torch.equal(features(model, x), model[1](model[0](x)))

    class TorchvisionStyle(nn.Module):  # `features` is a submodule (the conv trunk), not penultimate features
        def __init__(self):
            super().__init__()
            self.features, self.classifier = nn.Sequential(nn.Linear(6, 8), nn.Tanh()), nn.Linear(8, 3)

        def forward(self, x):
            return F.softmax(self.classifier(self.features(x)), -1).squeeze()

    tv = TorchvisionStyle()
    assert discover(tv).head == "classifier" and torch.equal(features(tv, x), tv.features(x))
    assert discover(NoHead()).head is None and features(NoHead(), x) is None


def test_diagnostics_without_units_or_head_give_none():
    model = NoHead()
    x, y = torch.randn(BATCH, 6), torch.randint(0, N_OUT, (BATCH,))

    def loss(m, xb, yb):
        out = m(xb)
        return out.mean(), (out.argmax(1) == yb).sum(), len(yb)

    row = measure(model, units.build(model), x, y, loss, DiagnosticsConfig())
    assert row["dormant_fraction"] is None and row["frozen_fraction"] is None and row["effective_rank"] is None
    assert row["weight_norm"] > 0 and row["layers"] == {}
    with pytest.raises(UserError, match="^method head-reset: model NoHead has no head_slices"):
        tiny({"name": "head-reset"}, factory=builder(NoHead))


class PartlyReadable(nn.Module):
    """fc1 → ReLU module → fc2 (a unit layer), then fc2 → F.relu → fc3 (not one: a functional activation)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(self.act(self.fc1(x)))))


def test_a_partial_map_is_announced_once_at_setup(capsys):
    s = tiny({"name": "redo"}, factory=builder(PartlyReadable))
    assert [layer.name for layer in s.unit_map] == ["fc1"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unit map of PartlyReadable: 1 layer(s) of units read automatically" in err
    assert "'fc2'" in err and "relu()" in err
    tiny({"name": "redo"}, factory=builder(PartlyReadable))
    assert capsys.readouterr().err == ""  # once per process
    assert partial_map_note(gelu_mlp()) is None and partial_map_note(MLP(6, [8], 3)) is None
