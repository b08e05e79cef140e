"""The tiny tokenizer: one token per number character, VLM special tokens, determinism."""

from vlaworks.models.text_tokenizer import SPECIAL_TOKENS, build_tiny_tokenizer


def test_numbers_tokenise_one_character_per_token():
    tok = build_tiny_tokenizer()
    text = "-0.1234, 0.5678,-1.0"
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids) == list(text)
    assert tok.decode(ids) == text


def test_single_characters_are_single_tokens():
    tok = build_tiny_tokenizer()
    for ch in list("0123456789") + ["-", ".", " ", ","]:
        assert len(tok(ch, add_special_tokens=False).input_ids) == 1, ch


def test_special_tokens_are_atomic_and_text_round_trips():
    tok = build_tiny_tokenizer()
    for t in SPECIAL_TOKENS:
        ids = tok(t, add_special_tokens=False).input_ids
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [t]
    text = "<|im_start|>user\nPick up the red cube and put it in the bowl.<|im_end|>"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    assert tok.padding_side == "left" and tok.pad_token == "<pad>"


def test_build_is_deterministic():
    a, b = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    assert 400 < len(a) < 2048
