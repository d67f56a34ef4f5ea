import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from plasticlab.language import tokenizer as tok  # noqa: E402
from plasticlab.models.t5 import T5Spec  # noqa: E402
from plasticlab.registry import UserError  # noqa: E402
from plasticlab.tasks.language import seq2seq_loss  # noqa: E402
from plasticlab.units import reinit_units  # noqa: E402


def tiny(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return T5Spec(**{"d_model": 32, "d_ff": 64, "heads": 4, **kw}).build((10,), tok.VOCAB_SIZE).eval()


def batch():
    x = tok.encode_batch(["abc de", "fgh", "ijklm no pq"], 12)
    y = tok.encode_batch(["bd", "xyz ab", "q"], 7)
    return x, y


def test_padding_leaves_loss_unchanged():
    torch.set_num_threads(1)
    model = tiny()
    x, y = batch()
    loss, correct, n = seq2seq_loss(model, x, y)
    assert int(n) == (y != tok.PAD).sum() == 3 + 7 + 2
    xp, yp = F.pad(x, (0, 9), value=tok.PAD), F.pad(y, (0, 5), value=tok.PAD)
    loss_p, correct_p, n_p = seq2seq_loss(model, xp, yp)
    assert loss_p.item() == pytest.approx(loss.item(), abs=1e-6)
    assert int(correct_p) == int(correct) and int(n_p) == int(n)
    # the loss is the mean over non-pad target tokens of −log p(y_t | y_<t, x)
    logp = torch.log_softmax(model(x, y), -1).gather(-1, y[..., None])[..., 0]
    assert loss.item() == pytest.approx(-logp[y != tok.PAD].mean().item(), abs=1e-6)
    assert model.features(xp).sub(model.features(x)).abs().max() < 1e-5


def test_init_is_t5s_and_seeded():
    model = tiny(d_model=64, d_ff=256)
    layers = model.unit_layers()
    assert [layer.name for layer in layers] == ["encoder.0.ff", "decoder.0.ff"]
    for layer in layers:
        assert layer.count == 256 and layer.act_dim == 2
        w_in, w_out = layer.in_weight, layer.out_weight
        assert w_in.rows().shape == (256, 64) and w_out.rows().shape == (256, 64)
        assert w_in.scale == pytest.approx(64 ** -0.5) and w_out.scale == pytest.approx(256 ** -0.5)
        assert w_in.tensor.std().item() == pytest.approx(w_in.scale, rel=0.05)
        assert w_out.tensor.std().item() == pytest.approx(w_out.scale, rel=0.05)
    head = model.head_slices()[0]
    assert head.tensor is model.t5.shared.weight and head.tensor.std().item() == pytest.approx(1.0, rel=0.1)
    untied = tiny(tie_embeddings=False).head_slices()[0].tensor
    assert untied is not tiny(tie_embeddings=False).t5.shared.weight
    a, b, c = tiny(1), tiny(1), tiny(2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.t5.shared.weight, c.t5.shared.weight)


def test_unit_map_addresses_feed_forward_units():
    model = tiny()
    x, y = batch()
    layer = model.unit_layers()[0]
    seen = {}
    hook = layer.activation.register_forward_hook(lambda _m, _i, out: seen.update(act=out))
    with torch.no_grad():
        layer.in_weight.tensor[5].zero_()  # unit 5's incoming weights
        model(x, y)
    hook.remove()
    act = seen["act"]
    assert act.shape == (3, 12, 64)
    assert act[..., 5].abs().max() == 0 and act[..., 4].abs().max() > 0
    before = [s.tensor.clone() for s in layer.incoming + layer.outgoing]
    mask = torch.zeros(64, dtype=torch.bool)
    mask[[1, 7]] = True
    reinit_units(layer, mask, outgoing="zero", generator=torch.Generator().manual_seed(0))
    w_in, w_out = layer.in_weight.tensor, layer.out_weight.tensor
    assert w_out[:, [1, 7]].abs().max() == 0 and torch.equal(w_out[:, 2], before[1][:, 2])
    assert not torch.equal(w_in[1], before[0][1]) and torch.equal(w_in[2], before[0][2])


def test_t5_needs_token_inputs():
    with pytest.raises(UserError, match="language family"):
        T5Spec(d_model=32, d_ff=64).build((1, 8, 8), 10)


def test_loss_and_backward_never_sync(monkeypatch):
    model = tiny().train()
    x, y = batch()

    def sync(*_a, **_k):
        raise AssertionError("host sync inside the training step")

    for name in ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, sync)
    loss, correct, n = seq2seq_loss(model, x, y)
    (loss * 1.0).backward()
    monkeypatch.undo()
    assert int(n) == 12 and model.t5.lm_head.weight.grad is not None


def test_sensitivity_inputs_are_the_input_embeddings():
    from torch.autograd.functional import jacobian

    from plasticlab.diagnostics.sensitivity import jacobian_sq_norms

    model = tiny()
    x, y = batch()
    z, fn = model.sensitivity_inputs(x, y)
    assert torch.allclose(fn(z), model(x, y), atol=1e-5)
    exact = jacobian_sq_norms(fn, z, mode="exact")
    # example 1 alone, differentiating the logits by its input embeddings directly
    emb = model.t5.shared(x[1:2]).detach()
    dec = torch.cat([torch.full_like(y[1:2, :1], tok.BOS), y[1:2, :-1]], 1)
    mask = torch.where(x[1:2] != tok.PAD, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
    jac = jacobian(lambda e: model.t5(inputs_embeds=e, attention_mask=mask, decoder_input_ids=dec).logits, emb)
    assert exact[1].item() == pytest.approx(jac.pow(2).sum().item(), rel=1e-4)


def test_diagnostics_run_on_t5():
    from plasticlab import diagnostics
    from plasticlab.config import DiagnosticsConfig

    model = tiny()
    x, y = batch()
    out = diagnostics.measure(model, model.unit_layers(), x, y, seq2seq_loss, DiagnosticsConfig())
    assert set(out["layers"]) == {"encoder.0.ff", "decoder.0.ff"}
    assert out["input_sensitivity"] > 0 and 0 <= out["dormant_fraction"] <= 1 and out["effective_rank"] >= 1
