"""plasticlab's character tokenizer for the language tasks (no download, no vocabulary file).

Vocabulary (``VOCAB_SIZE`` = 30 ids)::

    0 <pad>   padding; never a target (ignored by the loss) and never generated
    1 <eos>   end of sequence; ends every input and every target
    2 <bos>   decoder start: the decoder's first input (teacher forcing and decoding)
    3 <sep>   word separator (a space in text)
    4 … 29    the letters a … z (letter i of the alphabet is id ``LETTER0 + i``)

A sequence of words w₁ … w_n is encoded as ``w₁ <sep> w₂ <sep> … <sep> w_n <eos>`` followed by
<pad> up to the batch length. ``decode`` reads up to the first <eos>, skips <pad>/<bos> and
turns <sep> into a space, so ``decode(encode(s)) == s`` for any text of lowercase words joined
by single spaces.
"""

from __future__ import annotations

import string

import torch

PAD, EOS, BOS, SEP = 0, 1, 2, 3
LETTER0 = 4
ALPHABET = string.ascii_lowercase
VOCAB_SIZE = LETTER0 + len(ALPHABET)
SPECIAL = {PAD: "<pad>", EOS: "<eos>", BOS: "<bos>", SEP: " "}


def encode(text: str) -> list[int]:
    """Token ids of ``text`` (lowercase words separated by single spaces), ending with <eos>."""
    ids = []
    for ch in text:
        if ch == " ":
            ids.append(SEP)
        elif ch in ALPHABET:
            ids.append(LETTER0 + ALPHABET.index(ch))
        else:
            raise ValueError(f"cannot encode {ch!r}: the vocabulary holds a-z and the space")
    return ids + [EOS]


def decode(ids: list[int]) -> str:
    """Text of ``ids`` up to the first <eos>; <pad> and <bos> are skipped."""
    out = []
    for i in ids:
        if i == EOS:
            break
        if i == SEP:
            out.append(" ")
        elif i >= LETTER0:
            out.append(ALPHABET[i - LETTER0])
    return "".join(out)


def encode_batch(texts: list[str], length: int) -> torch.Tensor:
    """(N, length) int64 ids, right-padded with <pad>; raises ValueError if a text is too long."""
    out = torch.full((len(texts), length), PAD, dtype=torch.int64)
    for i, text in enumerate(texts):
        ids = encode(text)
        if len(ids) > length:
            raise ValueError(f"{text!r} needs {len(ids)} tokens, more than {length}")
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def decode_batch(ids: torch.Tensor) -> list[str]:
    """Texts of a (N, L) id tensor (one host transfer)."""
    return [decode(row) for row in ids.tolist()]


def words_to_ids(letters: torch.Tensor) -> torch.Tensor:
    """Token ids of word batches given as letter indices.

    Args:
        letters: (N, W, k) int64 letter indices in [0, 26): N sequences of W words of k letters.
    Returns:
        (N, W·(k+1)) int64 ids: each word's letters then <sep>, the last <sep> replaced by <eos>.
    """
    n, w, _ = letters.shape
    sep = torch.full((n, w, 1), SEP, dtype=torch.int64, device=letters.device)
    ids = torch.cat([letters + LETTER0, sep], dim=2).reshape(n, -1)
    ids[:, -1] = EOS
    return ids


def sequence_length(words: int, word_length: int) -> int:
    """Tokens of ``words`` words of ``word_length`` letters: letters, separators and <eos>."""
    return words * (word_length + 1)
