"""Seed 004's string action tokenizer (section III-B): actions written as characters.

Each normalised value is written with a fixed number of decimals (4 in the paper), one
character per token: ``Δx = 0.0312`` becomes ``0 . 0 3 1 2``; negatives carry a
leading ``-``. Dimensions of one timestep are separated by ``dim_sep`` and timesteps by
``step_sep``; the answer ends with END (the LM's EOS). The paper fixes the number
format but not the separators; the defaults (space between dimensions, comma between
timesteps) are single tokens in every tokenizer we use.

Decoding is constrained by :class:`NumberGrammar` (greedy, as the paper, or *median*:
:meth:`NumberGrammar.median_symbol`), a finite-state machine over
``[-] digit . d d d d (sep | END)`` that also counts dimensions and timesteps, so the
decoder can only produce exactly ``T * D`` well-formed numbers; values are clipped to
``[-1, 1]`` when read back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlaworks.models.heads.token.base import ActionTokenizer, Grammar, check_chunk, quantile_pick

DIGITS = "0123456789"
MINUS, POINT = 10, 11
DIM_SEP, STEP_SEP = 12, 13
END = 14

# states of the number state machine
_START, _SIGN, _INT, _FRAC, _NUM_END, _DONE = range(6)


def _mask(*symbols: int) -> np.ndarray:
    m = np.zeros(END + 1, dtype=bool)
    m[list(symbols)] = True
    return m


_DIGIT_MASK = _mask(*range(10))
_START_MASK = _mask(*range(10), MINUS)
_MASKS = {
    _START: _START_MASK,
    _SIGN: _DIGIT_MASK,
    _INT: _mask(POINT),
    _FRAC: _DIGIT_MASK,
    _DONE: np.zeros(END + 1, dtype=bool),
}
_SEP_MASKS = {DIM_SEP: _mask(DIM_SEP), STEP_SEP: _mask(STEP_SEP), END: _mask(END)}


class NumberGrammar(Grammar):
    """State machine for ``T * D`` numbers ``[-]d.dddd`` with separators, then END."""

    def __init__(self, chunk: int, action_dim: int, decimals: int) -> None:
        self.chunk, self.action_dim, self.decimals = chunk, action_dim, decimals
        self.state = _START
        self.frac = 0  # decimals written in the current number
        self.t = 0  # current timestep
        self.d = 0  # current dimension
        self.tau = 0.5  # median decoding: quantile of the current number's magnitude still to hit

    def _separator(self) -> int:
        if self.d < self.action_dim - 1:
            return DIM_SEP
        return STEP_SEP if self.t < self.chunk - 1 else END

    def allowed(self) -> np.ndarray:
        if self.state == _NUM_END:
            return _SEP_MASKS[self._separator()]
        return _MASKS[self.state]

    def push(self, symbol: int) -> None:
        if not (0 <= symbol <= END and self.allowed()[symbol]):
            raise ValueError(f"Number grammar: symbol {symbol} not allowed in state {self.state}.")
        if self.state == _START:
            self.state = _SIGN if symbol == MINUS else _INT
        elif self.state == _SIGN:
            self.state = _INT
        elif self.state == _INT:
            self.state, self.frac = _FRAC, 0
        elif self.state == _FRAC:
            self.frac += 1
            if self.frac == self.decimals:
                self.state = _NUM_END
        elif symbol == END:
            self.state = _DONE
        else:
            if symbol == DIM_SEP:
                self.d += 1
            else:
                self.t, self.d = self.t + 1, 0
            self.state = _START

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def median_symbol(self, probs: np.ndarray) -> int:
        """Median decoding of ``[-]d.dddd``: at the sign the values run ``-`` (all negatives)
        then ``0..9``; inside a negative number a larger digit is a smaller value, so the
        quantile is mirrored once the minus is chosen; each digit then takes the quantile
        left inside the previous choice (the exact median under the model's distribution)."""
        allowed = self.allowed()
        if allowed.sum() == 1:
            return int(np.flatnonzero(allowed)[0])
        if self.state == _START:
            symbol, inside = quantile_pick(probs, [MINUS, *range(10)], 0.5)
            self.tau = 1.0 - inside if symbol == MINUS else inside
            return symbol
        symbol, self.tau = quantile_pick(probs, range(10), self.tau)
        return symbol


class StringTokenizer(ActionTokenizer):
    """Actions as character strings with ``decimals`` decimals (seed 004 uses 4)."""

    kind = "string"

    def __init__(self, decimals: int = 4, dim_sep: str = " ", step_sep: str = ",") -> None:
        if decimals < 1:
            raise ValueError(f"StringTokenizer needs at least one decimal; got decimals={decimals}.")
        chars = (dim_sep, step_sep)
        if any(len(c) != 1 or c in DIGITS + "-." for c in chars) or dim_sep == step_sep:
            raise ValueError(
                f"Separators must be two different single characters other than digits, '-' and '.'; "
                f"got dim_sep={dim_sep!r}, step_sep={step_sep!r}."
            )
        self.decimals, self.dim_sep, self.step_sep = decimals, dim_sep, step_sep
        self._number = re.compile(rf"^-?\d\.\d{{{decimals}}}$")

    @property
    def n_symbols(self) -> int:
        return END

    @property
    def symbol_chars(self) -> tuple[str, ...]:
        return (*DIGITS, "-", ".", self.dim_sep, self.step_sep)

    @property
    def value_symbols(self) -> tuple[int, ...]:
        """The digits (a noisy digit keeps the number well formed)."""
        return tuple(range(len(DIGITS)))

    def to_text(self, chunk: np.ndarray) -> str:
        """The answer string for one chunk, e.g. ``"0.0312 -0.5000,..."``."""
        arr = check_chunk(chunk)
        return self.step_sep.join(self.dim_sep.join(f"{v:.{self.decimals}f}" for v in row) for row in arr)

    def encode(self, chunk: np.ndarray) -> list[int]:
        index = {c: i for i, c in enumerate(self.symbol_chars)}
        return [index[c] for c in self.to_text(chunk)]

    @staticmethod
    def _parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return 0.0

    def decode(self, symbols: Sequence[int], chunk: int, action_dim: int) -> np.ndarray:
        chars = self.symbol_chars
        text = "".join(chars[s] for s in symbols if 0 <= s < END)
        out = np.zeros((chunk, action_dim), dtype=np.float32)
        for t, step in enumerate(text.split(self.step_sep)[:chunk]):
            for d, num in enumerate(step.split(self.dim_sep)[:action_dim]):
                out[t, d] = self._parse(num)
        return np.clip(out, -1.0, 1.0)

    def grammar(self, chunk: int, action_dim: int) -> NumberGrammar:
        return NumberGrammar(chunk, action_dim, self.decimals)

    def steps_of(self, symbols: Sequence[int], action_dim: int) -> list[int]:
        steps, t = [], 0
        for s in symbols:
            steps.append(t)
            t += s == STEP_SEP
        return steps

    def is_well_formed(self, symbols: Sequence[int], chunk: int, action_dim: int) -> bool:
        """True when ``symbols`` are exactly ``chunk`` x ``action_dim`` numbers in the grammar."""
        chars = self.symbol_chars
        text = "".join(chars[s] for s in symbols if 0 <= s < END)
        steps = text.split(self.step_sep)
        return len(steps) == chunk and all(
            len(nums := step.split(self.dim_sep)) == action_dim and all(self._number.match(n) for n in nums)
            for step in steps
        )

    def config(self) -> dict[str, Any]:
        return {"decimals": self.decimals, "dim_sep": self.dim_sep, "step_sep": self.step_sep}
