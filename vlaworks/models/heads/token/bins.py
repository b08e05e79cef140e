"""OpenVLA's baseline action tokenizer: 256 uniform bins per dimension.

Actions arrive normalised to ``[-1, 1]`` (q01 / q99 by the policy's normaliser). Each
value falls in one of ``n_bins`` equal-width bins and decodes to the bin centre, so the
round-trip error is at most half a bin width (``1 / n_bins``). A chunk ``[T, D]`` is
``T * D`` symbols, timestep-major; the length is fixed, so no END symbol is used.

Two additions that are not OpenVLA's (both off by default in the token head): the
expected value of a bin distribution (:meth:`BinTokenizer.expectation`, the head's
``decoding="mean"``) and Gaussian soft targets over the bins (:meth:`BinTokenizer.soft_targets`,
the head's ``label_sigma``; HL-Gauss, Farebrother et al. 2024, "Stop Regressing").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

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

    @property
    def centres(self) -> np.ndarray:
        """The value each bin decodes to, ascending ``[n_bins]``."""
        return -1.0 + (np.arange(self.n_bins) + 0.5) * self.bin_width

    def expectation(self, probs: np.ndarray) -> np.ndarray:
        """Expected value ``[...]`` under bin probabilities ``[..., n_bins]`` (renormalised)."""
        p = np.asarray(probs, dtype=np.float64)
        return (p @ self.centres) / p.sum(-1)

    def soft_targets(self, values: torch.Tensor, sigma: float) -> torch.Tensor:
        """HL-Gauss targets ``[..., n_bins]`` for values ``[...]`` (clipped to ``[-1, 1]``):
        the mass each bin holds of a Gaussian centred on the value with standard deviation
        ``sigma`` bin widths, renormalised over ``[-1, 1]``. A near miss then costs less
        than a far one, which one-hot cross-entropy over unordered classes cannot say."""
        if sigma <= 0:
            raise ValueError(f"soft_targets needs sigma > 0 (in bin widths); got {sigma}.")
        edges = torch.linspace(-1.0, 1.0, self.n_bins + 1, dtype=torch.float32, device=values.device)
        y = values.float().clamp(-1.0, 1.0).unsqueeze(-1)
        cdf = torch.special.ndtr((edges - y) / (sigma * self.bin_width))
        mass = cdf[..., 1:] - cdf[..., :-1]
        return mass / mass.sum(-1, keepdim=True)

    def encode(self, chunk: np.ndarray) -> list[int]:
        arr = check_chunk(chunk)
        idx = np.floor((arr + 1.0) / self.bin_width).astype(np.int64)
        return np.clip(idx, 0, self.n_bins - 1).reshape(-1).tolist()

    def decode(self, symbols: Sequence[int], chunk: int, action_dim: int) -> np.ndarray:
        need = chunk * action_dim
        idx = np.clip(np.asarray(list(symbols)[:need], dtype=np.int64), 0, self.n_bins - 1)
        out = np.zeros(need, dtype=np.float32)
        out[: idx.size] = self.centres[idx]
        return out.reshape(chunk, action_dim)

    def grammar(self, chunk: int, action_dim: int) -> Grammar:
        return _FixedLengthGrammar(self.n_bins, chunk * action_dim)

    def steps_of(self, symbols: Sequence[int], action_dim: int) -> list[int]:
        return [i // action_dim for i in range(len(symbols))]

    def config(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins}
