import math

import pytest

from plasticlab.language.bleu import bleu2, corpus_bleu, exact_match


def test_identical_is_one():
    assert bleu2(["a b c d"], ["a b c d"]) == pytest.approx(1.0)


def test_hand_computed_precisions():
    # p1 = 2/3 (a, b), p2 = 1/2 ("a b"), c = r → BP = 1
    assert bleu2(["a b c"], ["a b d"]) == pytest.approx(math.sqrt(2 / 3 * 1 / 2))


def test_brevity_penalty():
    # p1 = p2 = 1, c = 2, r = 4 → BP = exp(1 − 4/2)
    assert bleu2(["a b"], ["a b c d"]) == pytest.approx(math.exp(-1))
    # longer hypothesis: no penalty; p1 = 2/3, p2 = 1/2
    assert bleu2(["a b b"], ["a b"]) == pytest.approx(math.sqrt(2 / 3 * 1 / 2))


def test_corpus_pools_counts():
    # p1 = (2 + 1)/4, p2 = (1 + 0)/2: corpus BLEU √(3/8), not the mean of sentence scores (0.5)
    assert bleu2(["a b", "c d"], ["a b", "c e"]) == pytest.approx(math.sqrt(3 / 8))


def test_clipping_and_zero_precision():
    # "a a a" vs "a b": p1 = 1/3 (clipped), p2 = 0 → 0 (no smoothing)
    assert bleu2(["a a a"], ["a b"]) == 0.0
    assert bleu2([""], ["a b"]) == 0.0
    # clipped unigram count with a bigram match: hyp "a a b", ref "a b": p1 = 2/3, p2 = 1/2
    assert corpus_bleu([["a", "a", "b"]], [["a", "b"]]) == pytest.approx(math.sqrt(1 / 3))


def test_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = ["abc de fgh", "xy zz", "qq ww ee rr", "abc", "m n o p"]
    refs = ["abc de fgi", "xy zz yy", "qq ww ee rr", "abd", "n o p m"]
    ref = sacrebleu.BLEU(max_ngram_order=2, tokenize="none", smooth_method="none").corpus_score(hyps, [refs])
    assert bleu2(hyps, refs) == pytest.approx(ref.score / 100, abs=1e-12)


def test_exact_match():
    assert exact_match(["a b", "a  c", "x"], ["a b", "a c", "y"]) == pytest.approx(2 / 3)
