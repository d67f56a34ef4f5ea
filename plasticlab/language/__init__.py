"""Language-task helpers shared by the language families and the ``t5`` model: the character
tokenizer, corpus BLEU-2, and batched greedy/beam-search decoding. Imports only torch."""

from plasticlab.language import bleu, decoding, tokenizer

__all__ = ["bleu", "decoding", "tokenizer"]
