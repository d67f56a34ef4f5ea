import pytest
import torch

from plasticlab.language import tokenizer as tok
from plasticlab.registry import UserError
from plasticlab.seeding import generator
from plasticlab.tasks.language import BigramCipher, RandomSeq2Seq, bigram_cipher, disjoint_inputs


def letters(text: str) -> torch.Tensor:
    """(1, W, k) letter indices of equal-length words."""
    return torch.tensor([[[ord(c) - 97 for c in w] for w in text.split()]])


def text(idx: torch.Tensor) -> str:
    return " ".join("".join(chr(97 + c) for c in w) for w in idx[0].tolist())


def test_cipher_rule_hand_worked():
    shift = (torch.arange(26) + 1) % 26  # π(x) = x + 1
    # "abc": a → π(a) + 0 = 1 (b); b → π(b) + π(a) = 2 + 1 = 3 (d); c → 3 + 2 = 5 (f)
    assert text(bigram_cipher(letters("abc"), shift)) == "bdf"
    # each word restarts from π(c₀) = 0: "zab" → z: 0 (a); a: 1 + 0 (b); b: 2 + 1 (d)
    assert text(bigram_cipher(letters("abc zab"), shift, "word")) == "bdf abd"
    # stream: z follows c of the previous word: π(z) + π(c) = 0 + 3 (d)
    assert text(bigram_cipher(letters("abc zab"), shift, "stream")) == "bdf dbd"
    ident = torch.arange(26)
    assert text(bigram_cipher(letters("hello"), ident)) == "hlpwz"  # 7, 4+7, 11+4, 11+11, 14+11


def test_cipher_task_follows_its_key():
    fam = BigramCipher(count=2, words=3, word_length=4, pairs=50, test_pairs=20)
    base = fam.prepare(0, "cpu")
    task = fam.make_task(base, 0, 1)
    assert task.x_train.shape == task.y_train.shape == (50, base.input_length) == (50, 15)
    assert task.x_test.shape == (20, 15)
    g = generator(0, "bigram-cipher", 1, "key")
    key = torch.randperm(26, generator=g)
    src = task.x_train.view(50, 3, 5)[:, :, :4] - tok.LETTER0
    assert torch.equal(task.y_train.view(50, 3, 5)[:, :, :4] - tok.LETTER0, bigram_cipher(src, key))
    other = fam.make_task(base, 0, 0)
    assert not torch.equal(other.y_train, task.y_train)


def test_cipher_test_set_disjoint_from_train():
    # 1 word of 2 letters: 676 possible inputs, 300 training ones: without rejection ~1/3 of the
    # test inputs would repeat a training input
    fam = BigramCipher(count=1, words=1, word_length=2, pairs=300, test_pairs=200)
    task = fam.make_task(fam.prepare(3, "cpu"), 3, 0)
    train = {tuple(r) for r in task.x_train.tolist()}
    assert not any(tuple(r) in train for r in task.x_test.tolist())
    assert task.x_test.shape[0] == 200
    # and it is drawn from its own seed: not a slice of the training inputs
    assert not torch.equal(task.x_test[:10], task.x_train[:10])


def test_disjoint_inputs_gives_up_on_tiny_spaces():
    exclude = torch.arange(26).view(26, 1, 1)  # every one-letter word
    with pytest.raises(UserError):
        disjoint_inputs(generator(0), 1, 1, 1, exclude, rounds=3)


def test_seq2seq_targets_independent_of_inputs():
    fam = RandomSeq2Seq(count=3, input_words=4, target_words=2, word_length=3, pairs=40)
    base = fam.prepare(0, "cpu")
    a, b = fam.make_task(base, 0, 0), fam.make_task(base, 0, 1)
    assert a.x_train.shape == (40, 16) and a.y_train.shape == (40, 8)
    assert not torch.equal(a.y_train, b.y_train)
    assert a.x_test is None and a.y_test is None
    # pure function of (seed, t)
    assert torch.equal(fam.make_task(base, 0, 1).y_train, b.y_train)
    # targets come from their own stream: changing the inputs leaves them as they are
    wide = RandomSeq2Seq(count=3, input_words=7, target_words=2, word_length=3, pairs=40)
    c = wide.make_task(wide.prepare(0, "cpu"), 0, 0)
    assert not torch.equal(c.x_train[:, :16], a.x_train) and torch.equal(c.y_train, a.y_train)
    # shared inputs: the same inputs in every task, only targets change
    shared = RandomSeq2Seq(count=3, input_words=4, target_words=2, word_length=3, pairs=40, inputs="shared")
    s0, s1 = shared.make_task(base, 0, 0), shared.make_task(base, 0, 1)
    assert torch.equal(s0.x_train, s1.x_train) and torch.equal(s0.y_train, a.y_train)


def test_seq2seq_letters_uniform():
    fam = RandomSeq2Seq(count=1, input_words=5, target_words=5, word_length=5, pairs=2000)
    y = fam.make_task(fam.prepare(0, "cpu"), 0, 0).y_train
    counts = torch.bincount(y[y >= tok.LETTER0] - tok.LETTER0, minlength=26).float()
    assert counts.sum() == 2000 * 25
    assert (counts / counts.mean() - 1).abs().max() < 0.1  # ≈ 4 standard deviations


def test_bleu_subset_fixed_and_seeded():
    fam = BigramCipher(count=1, words=1, word_length=3, pairs=100, test_pairs=10, bleu_pairs=16)
    base = fam.prepare(0, "cpu")
    a, b = fam.make_task(base, 0, 0), fam.make_task(base, 0, 0)
    assert torch.equal(a.bleu_idx, b.bleu_idx) and a.bleu_idx.unique().numel() == 16
    assert not torch.equal(a.bleu_idx, fam.make_task(base, 1, 0).bleu_idx)


def test_config_validation():
    from plasticlab.config import load_config

    with pytest.raises(UserError, match="kinds that fit"):
        load_config({"tasks": {"family": "bigram-cipher"}, "model": {"name": "t5"},
                     "environment": {"kind": "input-interpolation"}})
    with pytest.raises(UserError, match="beams"):
        load_config({"tasks": {"family": "bigram-cipher", "beams": 0}, "model": {"name": "t5"}})
    cfg = load_config({"tasks": {"family": "random-seq2seq"}, "model": {"name": "t5"},
                       "environment": {"kind": "task-sampling"}})
    assert cfg.tasks.pairs == 5120 and cfg.tasks.input_words == 50 and cfg.model.d_model == 256
