"""Greedy and beam-search decoding, batched over sources and beams (no per-sample Python).

Works with any seq2seq model that provides (the ``t5`` model does)::

    model(x, y)                         -> (B, L, V) teacher-forced logits
    model.encode(x)                     -> memory: a tuple of (B, ...) tensors
    model.step(memory, tokens, cache)   -> (logits (B, V) of the next token, cache); cache=None first
    model.reorder(cache, rows)          -> the cache with its batch rows taken in order ``rows``

Beam search keeps, for every source, the ``beams`` prefixes of highest log-probability
log p(y₁…y_t | x) = Σ_{i ≤ t} log p(y_i | y_<i, x) (no length normalisation). Each step extends
every live prefix by every token except <pad> and <bos>, which are never generated; a prefix
that emitted <eos> is finished: it is extended only by <pad> at log-probability 0, so its score
stays fixed. After ``max_length`` tokens (or once every prefix is finished) the best prefix of
each source is returned. With ``beams = 1`` this is greedy decoding (argmax at every step).
"""

from __future__ import annotations

import torch
from torch import nn

from plasticlab.language.tokenizer import BOS, EOS, PAD


@torch.no_grad()
def beam_search(model: nn.Module, x: torch.Tensor, *, beams: int, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a batch of sources.

    Args:
        x: (B, L_in) source ids.
        beams: K ≥ 1 hypotheses kept per source (1 = greedy).
        max_length: tokens generated at most (including <eos>).
    Returns:
        tokens (B, max_length) int64: the best hypothesis, <pad> after its <eos>;
        scores (B,) float32: its log-probability under the model.
    """
    b, k = x.shape[0], beams
    memory = tuple(m.repeat_interleave(k, 0) for m in model.encode(x))
    scores = torch.full((b, k), float("-inf"), device=x.device)
    scores[:, 0] = 0.0  # one live prefix (<bos>) per source at the start
    done = torch.zeros(b * k, dtype=torch.bool, device=x.device)
    out = torch.full((b * k, max_length), PAD, dtype=torch.int64, device=x.device)
    last = torch.full((b * k, 1), BOS, dtype=torch.int64, device=x.device)
    cache = None
    base = (torch.arange(b, device=x.device) * k)[:, None]
    for t in range(max_length):
        logits, cache = model.step(memory, last, cache)
        logp = torch.log_softmax(logits.float(), dim=-1)  # (B·K, V)
        vocab = logp.shape[-1]
        logp[:, PAD] = float("-inf")
        logp[:, BOS] = float("-inf")
        finished = torch.full_like(logp, float("-inf"))
        finished[:, PAD] = 0.0
        logp = torch.where(done[:, None], finished, logp)
        cand = (scores.reshape(-1, 1) + logp).reshape(b, k * vocab)
        scores, flat = cand.topk(k, dim=1)  # (B, K), best first
        rows = (base + torch.div(flat, vocab, rounding_mode="floor")).reshape(-1)
        token = (flat % vocab).reshape(-1)
        out = out[rows]
        out[:, t] = token
        done = done[rows] | (token == EOS)
        cache = model.reorder(cache, rows)
        last = token[:, None]
        if bool(done.all()):  # SYNC: once per decoding step (measurement only, never in training)
            break
    return out.reshape(b, k, max_length)[:, 0], scores[:, 0]


def greedy(model: nn.Module, x: torch.Tensor, *, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding: beam search with one beam."""
    return beam_search(model, x, beams=1, max_length=max_length)


@torch.no_grad()
def sequence_logprob(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(y | x) = Σ_t log p(y_t | y_<t, x) over the non-pad tokens of y (B, L); returns (B,)."""
    logp = torch.log_softmax(model(x, y).float(), dim=-1)
    tok = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return torch.where(y != PAD, tok, torch.zeros_like(tok)).sum(-1)
