"""OpenVLA's baseline action tokenizer: 256 uniform bins per dimension.

Actions arrive normalised to ``[-1, 1]`` (q01 / q99 by the policy's normaliser). Each
value falls in one of ``n_bins`` equal-width bins and decodes to the bin centre, so the
round-trip error is at most half a bin width (``1 / n_bins``). A chunk ``[T, D]`` is
``T * D`` symbols, timestep-major; the length is fixed, so no END symbol is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vlaworks.models.heads.token.base import ActionTokenizer, Grammar, check_chunk, quantile_pick


class _FixedLengthGrammar(Grammar):
    """Any action symbol, exactly ``length`` times, no END."""

    def __init__(self, n_symbols: int, length: int) -> None:
        self._mask = np.ones(n_symbols + 1, dtype=bool)
        self._mask[-1] = False
        self._left = length

    def allowed(self) -> np.ndarray:
        return self._mask

    def push(self, symbol: int) -> None:
        if self._left <= 0 or not 0 <= symbol < self._mask.size - 1:
            raise ValueError(f"Bin grammar: symbol {symbol} not allowed ({self._left} symbols left).")
        self._left -= 1

    @property
    def done(self) -> bool:
        return self._left == 0

    def median_symbol(self, probs: np.ndarray) -> int:
        """The median bin (bins are in ascending value order)."""
        return quantile_pick(probs, range(self._mask.size - 1), 0.5)[0]


class BinTokenizer(ActionTokenizer):
    """``n_bins`` uniform bins over ``[-1, 1]`` per action dimension (OpenVLA)."""

    kind = "bins"

    def __init__(self, n_bins: int = 256) -> None:
        if n_bins < 2:
            raise ValueError(f"BinTokenizer needs at least 2 bins; got n_bins={n_bins}.")
        self.n_bins = n_bins

    @property
    def n_symbols(self) -> int:
        return self.n_bins

    @property
    def uses_end(self) -> bool:
        return False

    @property
    def bin_width(self) -> float:
        return 2.0 / self.n_bins

    def encode(self, chunk: np.ndarray) -> list[int]:
        arr = check_chunk(chunk)
        idx = np.floor((arr + 1.0) / self.bin_width).astype(np.int64)
        return np.clip(idx, 0, self.n_bins - 1).reshape(-1).tolist()

    def decode(self, symbols: Sequence[int], chunk: int, action_dim: int) -> np.ndarray:
        need = chunk * action_dim
        idx = np.clip(np.asarray(list(symbols)[:need], dtype=np.int64), 0, self.n_bins - 1)
        centres = -1.0 + (idx + 0.5) * self.bin_width
        out = np.zeros(need, dtype=np.float32)
        out[: centres.size] = centres
        return out.reshape(chunk, action_dim)

    def grammar(self, chunk: int, action_dim: int) -> Grammar:
        return _FixedLengthGrammar(self.n_bins, chunk * action_dim)

    def steps_of(self, symbols: Sequence[int], action_dim: int) -> list[int]:
        return [i // action_dim for i in range(len(symbols))]

    def config(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins}
