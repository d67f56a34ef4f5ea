"""Language families ``random-seq2seq`` and ``bigram-cipher`` (Liu & Mou, PAPERS.md §B).

Sequences are words of lowercase letters in plasticlab's character tokenizer
(``plasticlab.language.tokenizer``): ``w₁ <sep> … <sep> w_n <eos>``. Every word has exactly
``word_length`` letters, so all inputs of a family (every task, train and test) have one length
L_in and all targets one length L_out (no padding is needed; the loss still ignores <pad>).

* ``random-seq2seq`` (trainability): task t has ``pairs`` pairs; an input is ``input_words``
  uniform random words, its target ``target_words`` uniform random words drawn from a separate
  stream, independent of the input. No rule links them, so there is no test set (test measures
  are null). Inputs are fresh for every task (``inputs: per-task``) or shared by all tasks
  (``shared``: only the targets change, like random labels).
* ``bigram-cipher`` (generalisation): task t draws a letter permutation π_t; the target of an
  input word c₁…c_k is the word o₁…o_k with o_i = alphabet[(π_t(c_i) + π_t(c_{i−1})) mod 26] and
  π_t(c₀) := 0 for the start symbol c₀ before each word (``chain: word``; so o₁ = alphabet[π_t(c₁)])
  or only before the first word, the last letter of a word preceding the next word's first
  letter (``chain: stream``). Inputs are ``words`` uniform random words; ``pairs`` training and
  ``test_pairs`` test inputs per task, the test inputs from their own seed and, by rejection,
  never equal to a training input.

Everything of task t is a pure function of (seed, t) through ``plasticlab.seeding.generator``
with parts (seed, family, t, stream), stream ∈ {inputs, targets, key, train, test, bleu}.

Measures (``measure``): ``train_loss``/``test_loss`` = mean cross-entropy per non-pad target
token with teacher forcing, ``train_acc``/``test_acc`` = teacher-forced token accuracy over the
same tokens, ``train_bleu2``/``test_bleu2`` = corpus BLEU-2 (``plasticlab.language.bleu``) of
beam-search outputs (``beams``) against the targets, ``train_exact``/``test_exact`` = share of
outputs whose words equal the target's. Train BLEU/exact use a fixed subset of ``bleu_pairs``
training pairs drawn once from (seed, family, t, bleu); test BLEU/exact the whole test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.language import bleu, decoding, tokenizer
from plasticlab.language.tokenizer import PAD, VOCAB_SIZE, words_to_ids
from plasticlab.registry import UserError
from plasticlab.seeding import generator
from plasticlab.tasks.base import Task

LETTERS = len(tokenizer.ALPHABET)
EVAL_TOKENS = 2**17
"""Teacher-forced measures run in chunks of at most this many input tokens (bounds memory)."""


@dataclass
class LanguageTask(Task):
    """A language task: token ids (N, L_in) → (N, L_out), plus the train-BLEU subset."""

    bleu_idx: torch.Tensor | None = None
    """Indices of the training pairs decoded for ``train_bleu2``/``train_exact``."""


@dataclass
class LanguageBase:
    """What ``prepare`` returns: sequence lengths and where the tensors live."""

    device: torch.device
    input_length: int
    target_length: int
    vocab: int = VOCAB_SIZE


def seq2seq_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """Teacher-forced cross-entropy over the non-pad target tokens.

    Returns:
        (mean loss per non-pad token, correct non-pad tokens, non-pad token count) as device
        tensors (no sync).
    """
    logits = model(x, target).float()
    loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD)
    mask = target != PAD
    correct = ((logits.argmax(-1) == target) & mask).sum()
    return loss, correct, mask.sum()


@torch.no_grad()
def teacher_forced(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(Σ token loss, Σ correct, Σ tokens) over (x, y) in chunks, as one device tensor (no sync)."""
    acc = torch.zeros(3, device=x.device, dtype=torch.float64)
    for i in range(0, x.shape[0], batch_size):
        loss, correct, n = seq2seq_loss(model, x[i : i + batch_size], y[i : i + batch_size])
        acc += torch.stack([loss.double() * n, correct.double(), n.double()])
    return acc


@torch.no_grad()
def decode_texts(model: nn.Module, x: torch.Tensor, *, beams: int, max_length: int, batch_size: int) -> list[str]:
    """Beam-search outputs of the sources x as texts (one host transfer per chunk)."""
    out = []
    for i in range(0, x.shape[0], batch_size):
        tokens, _ = decoding.beam_search(model, x[i : i + batch_size], beams=beams, max_length=max_length)
        out += tokenizer.decode_batch(tokens)
    return out


def random_letters(g: torch.Generator, n: int, words: int, word_length: int) -> torch.Tensor:
    """(n, words, word_length) uniform letter indices."""
    return torch.randint(LETTERS, (n, words, word_length), generator=g)


class LanguageFamily:
    """Shared behaviour of the language families.
    # why: a tiny mixin, like ClassificationFamily: the protocol functions both families share."""

    uses_data = False
    kinds = ("abrupt", "task-sampling")
    models = ("t5",)
    """Models that fit (token inputs, ``forward(x, y)``, decoding interface)."""

    def n_train(self, base: LanguageBase) -> int:
        return self.pairs

    def n_outputs(self, base: LanguageBase) -> int:
        return base.vocab

    def input_shape(self, base: LanguageBase) -> tuple[int, ...]:
        return (base.input_length,)

    def loss(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor):
        return seq2seq_loss(model, x, target)

    def bleu_subset(self, seed: int, t: int, device) -> torch.Tensor:
        g = generator(seed, self.family, t, "bleu")
        return torch.randperm(self.pairs, generator=g)[: self.bleu_pairs].to(device)

    def measure(self, model: nn.Module, task: LanguageTask, batch_size: int) -> dict:
        """Loss, token accuracy, BLEU-2 and exact match (module docstring). One host sync for the
        teacher-forced sums, one per decoded chunk."""
        chunk = max(1, min(batch_size, EVAL_TOKENS // task.x_train.shape[1]))
        sums = [teacher_forced(model, task.x_train, task.y_train, chunk)]
        if task.x_test is not None:
            sums.append(teacher_forced(model, task.x_test, task.y_test, chunk))
        got = torch.stack(sums).tolist()  # SYNC: once per measurement
        max_len = self.max_decode_length or task.y_train.shape[1]
        kw = dict(beams=self.beams, max_length=max_len, batch_size=self.decode_batch_size)
        out: dict = {}
        sets = {"train": (task.x_train[task.bleu_idx], task.y_train[task.bleu_idx]), "test": (task.x_test, task.y_test)}
        for i, (name, (x, y)) in enumerate(sets.items()):
            if x is None:
                out.update({f"{name}_{m}": None for m in ("loss", "acc", "bleu2", "exact")})
                continue
            loss_sum, correct, n = got[i]
            hyps, refs = decode_texts(model, x, **kw), tokenizer.decode_batch(y)
            out.update({f"{name}_loss": loss_sum / n, f"{name}_acc": correct / n,
                        f"{name}_bleu2": bleu.bleu2(hyps, refs), f"{name}_exact": bleu.exact_match(hyps, refs)})
        return out


@registry.register(registry.FAMILIES, "random-seq2seq")
@dataclass
class RandomSeq2Seq(LanguageFamily):
    """Config of the ``random-seq2seq`` family (defaults: Liu & Mou's Random Seq2Seq)."""

    family: str = "random-seq2seq"
    count: int = field(default=100, metadata=bounds(ge=1))
    """Number of tasks."""
    input_words: int = field(default=50, metadata=bounds(ge=1))
    target_words: int = field(default=5, metadata=bounds(ge=1))
    word_length: int = field(default=5, metadata=bounds(ge=1))
    pairs: int = field(default=5120, metadata=bounds(ge=1))
    """Training pairs per task."""
    inputs: Literal["per-task", "shared"] = "per-task"
    """Fresh random inputs for every task, or one set of inputs shared by all tasks."""
    bleu_pairs: int = field(default=512, metadata=bounds(ge=1))
    """Training pairs decoded for train_bleu2/train_exact (a fixed seeded subset)."""
    beams: int = field(default=5, metadata=bounds(ge=1, le=16))
    max_decode_length: int | None = field(default=None, metadata=bounds(ge=1))
    """Tokens generated at most; null = the target length."""
    decode_batch_size: int = field(default=256, metadata=bounds(ge=1))
    """Sources decoded at once (each with ``beams`` hypotheses)."""

    def prepare(self, seed: int, device) -> LanguageBase:
        return LanguageBase(torch.device(device), tokenizer.sequence_length(self.input_words, self.word_length),
                            tokenizer.sequence_length(self.target_words, self.word_length))

    def make_task(self, base: LanguageBase, seed: int, t: int) -> LanguageTask:
        src = (seed, self.family, t) if self.inputs == "per-task" else (seed, self.family, "shared")
        x = words_to_ids(random_letters(generator(*src, "inputs"), self.pairs, self.input_words, self.word_length))
        y = words_to_ids(random_letters(generator(seed, self.family, t, "targets"), self.pairs, self.target_words,
                                        self.word_length))
        d = base.device
        return LanguageTask(t, x.to(d), y.to(d), None, None, bleu_idx=self.bleu_subset(seed, t, d))


def task_key(seed: int, t: int) -> torch.Tensor:
    """π_t: a permutation of the 26 letters, π_t[c] = image of letter c."""
    return torch.randperm(LETTERS, generator=generator(seed, "bigram-cipher", t, "key"))


def bigram_cipher(letters: torch.Tensor, key: torch.Tensor, chain: Literal["word", "stream"] = "word") -> torch.Tensor:
    """Cipher of letter indices (N, W, k): o_i = (π(c_i) + π(c_{i−1})) mod 26 with π(c₀) := 0
    before every word (``word``) or only before the first word (``stream``)."""
    p = key[letters]  # (N, W, k) π(c_i)
    flat = p if chain == "word" else p.reshape(p.shape[0], 1, -1)
    prev = F.pad(flat[..., :-1], (1, 0))  # π(c_{i−1}), 0 for the start symbol
    return ((flat + prev) % LETTERS).reshape(letters.shape)


def disjoint_inputs(g: torch.Generator, n: int, words: int, word_length: int, exclude: torch.Tensor,
                    rounds: int = 100) -> torch.Tensor:
    """n random inputs (n, words, word_length), none equal to a row of ``exclude`` (drawn by
    rejection: each round draws the missing number of candidates and drops those in ``exclude``)."""
    ex = exclude.reshape(exclude.shape[0], -1)
    kept = torch.empty(0, words * word_length, dtype=torch.int64)
    for _ in range(rounds):
        cand = random_letters(g, n - kept.shape[0], words, word_length).reshape(-1, words * word_length)
        _, inv = torch.unique(torch.cat([ex, cand]), dim=0, return_inverse=True)
        kept = torch.cat([kept, cand[~torch.isin(inv[ex.shape[0]:], inv[: ex.shape[0]])]])
        if kept.shape[0] == n:
            return kept.reshape(n, words, word_length)
    raise UserError(f"bigram-cipher: cannot draw {n} test inputs unlike the training inputs: only 26^"
                    f"{words * word_length} inputs exist (raise words or word_length, or lower test_pairs)")


@registry.register(registry.FAMILIES, "bigram-cipher")
@dataclass
class BigramCipher(LanguageFamily):
    """Config of the ``bigram-cipher`` family (defaults: Liu & Mou's Bigram Cipher)."""

    family: str = "bigram-cipher"
    count: int = field(default=100, metadata=bounds(ge=1))
    """Number of tasks."""
    words: int = field(default=10, metadata=bounds(ge=1))
    word_length: int = field(default=5, metadata=bounds(ge=1))
    pairs: int = field(default=1280, metadata=bounds(ge=1))
    """Training pairs per task."""
    test_pairs: int = field(default=512, metadata=bounds(ge=1))
    """Held-out pairs per task (own seed, no input shared with training)."""
    chain: Literal["word", "stream"] = "word"
    """Where the start symbol π(c₀) := 0 sits: before every word, or before the first only."""
    bleu_pairs: int = field(default=512, metadata=bounds(ge=1))
    """Training pairs decoded for train_bleu2/train_exact (a fixed seeded subset)."""
    beams: int = field(default=5, metadata=bounds(ge=1, le=16))
    max_decode_length: int | None = field(default=None, metadata=bounds(ge=1))
    """Tokens generated at most; null = the target length."""
    decode_batch_size: int = field(default=256, metadata=bounds(ge=1))
    """Sources decoded at once (each with ``beams`` hypotheses)."""

    def prepare(self, seed: int, device) -> LanguageBase:
        n = tokenizer.sequence_length(self.words, self.word_length)
        return LanguageBase(torch.device(device), n, n)

    def make_task(self, base: LanguageBase, seed: int, t: int) -> LanguageTask:
        key = task_key(seed, t)
        train = random_letters(generator(seed, self.family, t, "train"), self.pairs, self.words, self.word_length)
        test = disjoint_inputs(generator(seed, self.family, t, "test"), self.test_pairs, self.words,
                               self.word_length, train)
        d = base.device
        xs = [words_to_ids(c).to(d) for c in (train, test)]
        ys = [words_to_ids(bigram_cipher(c, key, self.chain)).to(d) for c in (train, test)]
        return LanguageTask(t, xs[0], ys[0], xs[1], ys[1], bleu_idx=self.bleu_subset(seed, t, d))
