"""Corpus BLEU-2 over word tokens (Papineni et al. 2002), on a 0–1 scale.

For hypotheses h_s and single references r_s (lists of words, s = 1…S):

    p_n  = Σ_s Σ_{g ∈ n-grams(h_s)} min(count_{h_s}(g), count_{r_s}(g)) / Σ_s max(|h_s| − n + 1, 0)
    BP   = 1 if c > r else exp(1 − r/c),   c = Σ_s |h_s|,  r = Σ_s |r_s|
    BLEU-2 = BP · exp(½·log p₁ + ½·log p₂)

Counts are pooled over the corpus before dividing (corpus BLEU, not a mean of sentence
scores). No smoothing: BLEU-2 = 0 when p₁ or p₂ is 0 (or c = 0). Words are the
whitespace-separated tokens of the decoded text (empty words never occur). This equals
``sacrebleu.BLEU(max_ngram_order=2, tokenize="none", smooth_method="none").corpus_score(hyps,
[refs]).score / 100`` (checked in the tests when sacrebleu is installed).
"""

from __future__ import annotations

import math
from collections import Counter


def ngram_stats(hyp: list[str], ref: list[str], n: int) -> tuple[int, int]:
    """(clipped n-gram matches, hypothesis n-grams) of one sentence pair."""
    h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
    r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
    return sum(min(c, r[g]) for g, c in h.items()), max(len(hyp) - n + 1, 0)


def corpus_bleu(hyps: list[list[str]], refs: list[list[str]], max_order: int = 2) -> float:
    """Corpus BLEU with uniform weights on 1…``max_order``-grams (module docstring), in [0, 1]."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    matches, totals = [0] * max_order, [0] * max_order
    c = r = 0
    for h, ref in zip(hyps, refs, strict=True):
        c, r = c + len(h), r + len(ref)
        for n in range(1, max_order + 1):
            m, t = ngram_stats(h, ref, n)
            matches[n - 1] += m
            totals[n - 1] += t
    if c == 0 or min(matches) == 0:
        return 0.0
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_order)


def bleu2(hyps: list[str], refs: list[str]) -> float:
    """Corpus BLEU-2 of texts (words split on whitespace), in [0, 1]."""
    return corpus_bleu([h.split() for h in hyps], [r.split() for r in refs], 2)


def exact_match(hyps: list[str], refs: list[str]) -> float:
    """Share of hypotheses whose word sequence equals the reference's."""
    if not hyps:
        return 0.0
    return sum(h.split() == r.split() for h, r in zip(hyps, refs, strict=True)) / len(hyps)
