import pytest
import torch

from plasticlab.language import tokenizer as tok


def test_round_trip():
    for text in ["hello world", "a", "zebra quick fox", ""]:
        assert tok.decode(tok.encode(text)) == text
    batch = tok.encode_batch(["ab cd", "xyz"], 8)
    assert batch.tolist() == [[4, 5, 3, 6, 7, 1, 0, 0], [27, 28, 29, 1, 0, 0, 0, 0]]
    assert tok.decode_batch(batch) == ["ab cd", "xyz"]


def test_decode_stops_at_eos_and_skips_specials():
    assert tok.decode([tok.BOS, 4, tok.PAD, 5, tok.EOS, 6]) == "ab"


def test_reject_unknown_characters_and_overflow():
    with pytest.raises(ValueError):
        tok.encode("Hello")
    with pytest.raises(ValueError):
        tok.encode_batch(["abcdef"], 4)


def test_words_to_ids_layout():
    letters = torch.tensor([[[0, 1], [25, 2]]])  # "ab zc"
    ids = tok.words_to_ids(letters)
    assert ids.tolist() == [[4, 5, tok.SEP, 29, 6, tok.EOS]]
    assert ids.shape[1] == tok.sequence_length(2, 2)
    assert tok.decode_batch(ids) == ["ab zc"]
    assert tok.VOCAB_SIZE == 30
