"""Round trips, grammars and persistence of the bin, string and FAST action tokenizers."""

from __future__ import annotations

import numpy as np
import pytest
from token_fakes import smooth_chunks

from vlaworks.models.heads.token import (
    BinTokenizer,
    FastTokenizer,
    StringTokenizer,
    load_action_tokenizer,
)


def test_bins_round_trip_within_half_bin():
    tok = BinTokenizer(256)
    chunk = np.random.default_rng(1).uniform(-1, 1, (8, 7))
    chunk[0, :3] = [-1.0, 1.0, 0.0]
    ids = tok.encode(chunk)
    assert len(ids) == 56 and min(ids) >= 0 and max(ids) <= 255
    back = tok.decode(ids, 8, 7)
    assert np.abs(back - chunk).max() <= tok.bin_width / 2 + 1e-7


def test_bins_decode_pads_short_sequences():
    back = BinTokenizer(256).decode([255, 0], 2, 3)
    assert back.shape == (2, 3)
    assert back[0, 0] > 0.99 and back[0, 1] < -0.99 and (back.reshape(-1)[2:] == 0).all()


def test_string_text_format_and_round_trip():
    tok = StringTokenizer()
    chunk = np.array([[0.0312, -0.1234, 1.0], [-1.0, 0.5, -0.00004]])
    assert tok.to_text(chunk) == "0.0312 -0.1234 1.0000,-1.0000 0.5000 -0.0000"
    ids = tok.encode(chunk)
    assert tok.is_well_formed(ids, 2, 3)
    assert np.abs(tok.decode(ids, 2, 3) - chunk).max() <= 0.5e-4 + 1e-9


def test_string_clips_out_of_range_values():
    tok = StringTokenizer()
    chunk = np.array([[1.7, -3.0]])
    assert tok.to_text(chunk) == "1.0000 -1.0000"
    # a decoded "9.9999" (allowed by the digit grammar) is clipped back into range
    nine = [tok.symbol_chars.index(c) for c in "-9.9999 9.0000"]
    np.testing.assert_allclose(tok.decode(nine, 1, 2), [[-1.0, 1.0]])


def test_string_steps_of_follow_step_separator():
    tok = StringTokenizer()
    ids = tok.encode(np.array([[0.1, 0.2], [0.3, -0.4]]))
    steps = tok.steps_of(ids, 2)
    text = tok.to_text(np.array([[0.1, 0.2], [0.3, -0.4]]))
    assert steps[: text.index(",") + 1] == [0] * (text.index(",") + 1)
    assert steps[-1] == 1


@pytest.mark.parametrize("seed", range(5))
def test_string_grammar_with_random_logits_is_always_well_formed(seed):
    tok = StringTokenizer()
    rng = np.random.default_rng(seed)
    for _ in range(20):
        chunk, dim = int(rng.integers(1, 4)), int(rng.integers(1, 8))
        grammar, symbols = tok.grammar(chunk, dim), []
        while not grammar.done:
            logits = rng.normal(size=tok.n_symbols + 1)
            sym = int(np.argmax(np.where(grammar.allowed(), logits, -np.inf)))
            grammar.push(sym)
            symbols.append(sym)
        assert symbols[-1] == tok.n_symbols  # ends with END
        assert tok.is_well_formed(symbols[:-1], chunk, dim)
        back = tok.decode(symbols[:-1], chunk, dim)
        assert back.shape == (chunk, dim) and np.abs(back).max() <= 1.0


def test_string_grammar_rejects_disallowed_symbol():
    grammar = StringTokenizer().grammar(1, 1)
    with pytest.raises(ValueError, match="not allowed"):
        grammar.push(11)  # '.' cannot start a number


def test_string_decode_is_robust_to_malformed_symbols():
    tok = StringTokenizer()
    junk = [tok.symbol_chars.index(c) for c in "--..3 ,,"]
    assert tok.decode(junk, 2, 3).shape == (2, 3)


def test_fast_round_trip_compresses_smooth_chunks():
    data = smooth_chunks(600)
    tok = FastTokenizer(chunk=8, action_dim=7, scale=10.0, vocab_size=256).fit(data[:500])
    lengths, errors = [], []
    for c in data[500:]:
        ids = tok.encode(c)
        lengths.append(len(ids))
        errors.append(np.abs(tok.decode(ids, 8, 7) - c).mean())
    assert np.mean(lengths) < 56  # fewer tokens than one bin per value
    assert np.mean(errors) < 0.05  # quantisation step 1/scale in DCT space


def test_fast_decode_is_robust_to_malformed_sequences():
    tok = FastTokenizer(chunk=4, action_dim=2, vocab_size=64).fit(smooth_chunks(50, 4, 2))
    assert tok.decode([], 4, 2).shape == (4, 2)
    long = tok.encode(smooth_chunks(1, 4, 2, seed=3)[0]) * 5 + [10**6]
    out = tok.decode(long, 4, 2)
    assert out.shape == (4, 2) and np.abs(out).max() <= 1.0


def test_fast_save_load_gives_identical_encodings(tmp_path):
    data = smooth_chunks(200)
    tok = FastTokenizer(chunk=8, action_dim=7, vocab_size=200).fit(data)
    tok.save(tmp_path)
    loaded = load_action_tokenizer(tmp_path)
    assert isinstance(loaded, FastTokenizer) and loaded.n_symbols == tok.n_symbols
    for c in smooth_chunks(20, seed=9):
        ids = tok.encode(c)
        assert loaded.encode(c) == ids
        np.testing.assert_array_equal(loaded.decode(ids, 8, 7), tok.decode(ids, 8, 7))


def test_fast_rejects_too_small_vocab():
    with pytest.raises(ValueError, match="vocab_size"):
        FastTokenizer(chunk=8, action_dim=7, vocab_size=4).fit(smooth_chunks(20))


@pytest.mark.parametrize("tok", [BinTokenizer(64), StringTokenizer(decimals=3, dim_sep=",", step_sep=";")])
def test_save_load_simple_tokenizers(tmp_path, tok):
    tok.save(tmp_path)
    loaded = load_action_tokenizer(tmp_path)
    assert type(loaded) is type(tok) and loaded.config() == tok.config()
