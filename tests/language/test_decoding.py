import pytest
import torch

pytest.importorskip("transformers")

from plasticlab.language import tokenizer as tok  # noqa: E402
from plasticlab.language.decoding import beam_search, greedy, sequence_logprob  # noqa: E402
from plasticlab.models.t5 import T5Spec  # noqa: E402
from plasticlab.tasks.language import BigramCipher, seq2seq_loss  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    """A tiny T5 trained 150 steps on a 2-word × 3-letter cipher (token accuracy ≈ 0.4)."""
    torch.set_num_threads(1)
    fam = BigramCipher(count=1, words=2, word_length=3, pairs=256, test_pairs=64)
    task = fam.make_task(fam.prepare(0, "cpu"), 0, 0)
    torch.manual_seed(0)
    model = T5Spec(d_model=32, d_ff=64, heads=4).build((8,), tok.VOCAB_SIZE)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(256, (32,), generator=g)
        loss, _, _ = seq2seq_loss(model, task.x_train[idx], task.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), task.x_test


def naive_greedy(model, x, length):
    """Greedy decoding by re-running the full teacher-forced decoder at every step (no cache)."""
    y = torch.full((x.shape[0], length), tok.PAD)
    done = torch.zeros(x.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for t in range(length):
            logits = model(x, y)[:, t]
            logits[:, [tok.PAD, tok.BOS]] = float("-inf")
            nxt = torch.where(done, tok.PAD, logits.argmax(-1))
            y[:, t] = nxt
            done |= nxt == tok.EOS
    return y


def test_beam_at_least_as_likely_as_greedy(trained):
    model, x = trained
    g_tok, g_lp = greedy(model, x, max_length=8)
    b_tok, b_lp = beam_search(model, x, beams=4, max_length=8)
    assert (b_lp >= g_lp - 1e-5).all()
    assert b_lp.mean() > g_lp.mean() + 0.5 and (g_tok != b_tok).any(1).sum() > 10
    # returned scores are the model's log-probabilities of the returned sequences
    assert torch.allclose(sequence_logprob(model, x, b_tok), b_lp, atol=1e-4)
    assert torch.allclose(sequence_logprob(model, x, g_tok), g_lp, atol=1e-4)
    # outputs: <pad> only after <eos>, never <bos>
    assert not (b_tok == tok.BOS).any()
    after_eos = (b_tok == tok.EOS).long().cumsum(1) - (b_tok == tok.EOS).long() > 0
    assert ((b_tok == tok.PAD) == after_eos).all()


def test_greedy_with_cache_equals_full_recompute(trained):
    model, x = trained
    assert torch.equal(greedy(model, x[:16], max_length=8)[0], naive_greedy(model, x[:16], 8))


def test_batched_beams_do_not_mix_sources(trained):
    model, x = trained
    together, _ = beam_search(model, x[:6], beams=3, max_length=8)
    alone = torch.cat([beam_search(model, x[i : i + 1], beams=3, max_length=8)[0] for i in range(6)])
    assert torch.equal(together, alone)


def test_decoding_uses_no_deprecated_transformers_argument(trained):
    """transformers ≥ 5.2x renamed T5's ``past_key_values`` to ``cache`` (the old name warns, and goes in
    5.40): decoding passes the name the installed version has, and both names decode the same."""
    import warnings

    model, x = trained
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        tokens, scores = beam_search(model, x, beams=2, max_length=8)
    old, model.cache_arg = model.cache_arg, "past_key_values"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            old_tokens, old_scores = beam_search(model, x, beams=2, max_length=8)
    finally:
        model.cache_arg = old
    assert torch.equal(tokens, old_tokens) and torch.allclose(scores, old_scores)
