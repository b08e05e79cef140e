"""Median decoding of number tokens: the decoded value is the median of the model's
distribution over numbers, where greedy digit-by-digit decoding takes each digit's mode."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.models.heads.token import BinTokenizer, FastTokenizer, StringTokenizer
from vlaworks.models.heads.token.base import quantile_pick
from vlaworks.models.heads.token.head import TokenActionHead


def _decode_one_number(distribution: dict[str, float], rule: str) -> float:
    """Decode one number from a model whose answer distribution is ``distribution`` (number
    string -> probability): each step's symbol probabilities are that distribution
    conditioned on the prefix decoded so far."""
    tok = StringTokenizer(decimals=4)
    chars = tok.symbol_chars
    grammar = tok.grammar(chunk=1, action_dim=1)
    text = ""
    while not grammar.done:
        probs = np.zeros(tok.n_symbols + 1)
        for number, p in distribution.items():
            if number.startswith(text):
                nxt = number[len(text)] if len(number) > len(text) else None
                probs[chars.index(nxt) if nxt else tok.n_symbols] += p
        probs *= grammar.allowed()
        symbol = grammar.median_symbol(probs) if rule == "median" else int(np.argmax(probs))
        grammar.push(symbol)
        text += chars[symbol] if symbol < tok.n_symbols else ""
    return float(text)


@pytest.mark.parametrize(
    ("distribution", "greedy", "median"),
    [
        # positive: the first decimal's mode is 1, the second's is 3, but half the mass is <= 0.10
        ({"0.0900": 0.35, "0.1000": 0.15, "0.1100": 0.15, "0.1200": 0.15, "0.1300": 0.20}, 0.13, 0.10),
        # negative numbers: a larger digit is a smaller value (the quantile is mirrored)
        ({"-0.5000": 0.35, "-0.1000": 0.25, "0.2000": 0.40}, -0.5, -0.1),
        ({"-0.5000": 0.20, "-0.1000": 0.25, "0.2000": 0.55}, 0.2, 0.2),
    ],
)
def test_median_decoding_finds_the_median_number(distribution, greedy, median):
    assert _decode_one_number(distribution, "greedy") == pytest.approx(greedy)
    assert _decode_one_number(distribution, "median") == pytest.approx(median)


def test_bins_median_is_the_median_bin():
    tok = BinTokenizer(8)
    grammar = tok.grammar(chunk=1, action_dim=2)
    probs = np.array([0.3, 0, 0, 0, 0.05, 0.05, 0.25, 0.35, 0])  # mode: bin 7, median: bin 6
    assert grammar.median_symbol(probs) == 6


def test_quantile_pick_returns_the_quantile_left_inside():
    symbol, inside = quantile_pick(np.array([0.2, 0.3, 0.5]), [0, 1, 2], 0.35)
    assert symbol == 1 and inside == pytest.approx(0.5)


def test_fast_tokens_refuse_median_decoding():
    with pytest.raises(ValueError, match="no numeric order"):
        TokenActionHead(FastTokenizer(chunk=2, action_dim=2), chunk=2, action_dim=2, decoding="median")
    with pytest.raises(ValueError, match="Unknown decoding"):
        TokenActionHead(BinTokenizer(), chunk=2, action_dim=2, decoding="beam")
