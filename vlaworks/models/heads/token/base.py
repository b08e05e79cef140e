"""The action-tokenizer contract shared by the bin, string and FAST tokenizers.

An action tokenizer turns one *normalised* chunk ``[T, D]`` (values in ``[-1, 1]``) into
a list of **symbols**: small integers ``0 .. n_symbols - 1`` local to the tokenizer.
The :class:`~vlaworks.models.heads.token.head.TokenActionHead` maps symbols to LM
vocabulary ids (text characters for the string tokenizer, a reserved id range for bins
and FAST) and back. The end of an answer is the extra symbol ``END == n_symbols``
(mapped to the LM's EOS token).

Decoding is driven by a :class:`Grammar`: a small per-row state machine that says
which symbols may come next. Token heads mask the LM logits with it, so constrained
decoding can never emit a sequence the tokenizer cannot read back.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "action_tokenizer.json"


class Grammar(ABC):
    """Which symbols may follow the ones pushed so far (one decoding row).

    :meth:`allowed` returns a bool array of length ``n_symbols + 1``; its last entry is
    END. The head stops feeding a row once :attr:`done` is True.
    """

    @abstractmethod
    def allowed(self) -> np.ndarray:
        """Bool mask over ``n_symbols + 1`` entries (last = END) for the next symbol."""

    @abstractmethod
    def push(self, symbol: int) -> None:
        """Advance by one symbol (``END == n_symbols``); raises on a disallowed one."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True when the sequence is complete and nothing more may be emitted."""

    def median_symbol(self, probs: np.ndarray) -> int:
        """The next symbol under *median* decoding: the one that keeps the decoded number on
        the median of the model's distribution over numbers (``probs`` over ``n_symbols + 1``
        entries, zero where not allowed). Grammars of ordered numbers (bins, strings) define
        it; others cannot be decoded this way."""
        raise ValueError(
            f"{type(self).__name__} has no numeric order for median decoding; use decoding='greedy'."
        )


def quantile_pick(probs: np.ndarray, order: Sequence[int], tau: float) -> tuple[int, float]:
    """Walk ``order`` (symbols in ascending value) accumulating ``probs``; return the symbol
    where the cumulative mass reaches ``tau`` and the quantile left inside it, in [0, 1]."""
    p = np.asarray(probs, dtype=np.float64)[list(order)]
    total = p.sum()
    if total <= 0:
        raise ValueError("quantile_pick: no probability mass on the allowed symbols.")
    p = p / total
    cum = np.cumsum(p)
    k = min(int(np.searchsorted(cum, tau, side="left")), len(p) - 1)
    while p[k] == 0 and k > 0:  # land on a symbol the model gives mass to
        k -= 1
    inside = (tau - (cum[k] - p[k])) / p[k] if p[k] > 0 else 0.5
    return int(order[k]), float(min(max(inside, 0.0), 1.0))


class ActionTokenizer(ABC):
    """Normalised action chunk ``[T, D]`` <-> symbol list, plus the decoding grammar."""

    #: registry name written to the saved config
    kind: str

    @property
    @abstractmethod
    def n_symbols(self) -> int:
        """Number of action symbols (END excluded)."""

    @property
    def symbol_chars(self) -> tuple[str, ...] | None:
        """Text character of each symbol when symbols are LM text tokens, else ``None``
        (the head then reserves an id range for the symbols)."""
        return None

    @property
    def value_symbols(self) -> tuple[int, ...]:
        """Symbols that spell values and may stand in for each other (what the head's
        ``input_noise`` substitutes); structure symbols (signs, points, separators) are not
        among them. Default: every symbol."""
        return tuple(range(self.n_symbols))

    @property
    def uses_end(self) -> bool:
        """Whether a target sequence ends with END (variable-length answers)."""
        return True

    @abstractmethod
    def encode(self, chunk: np.ndarray) -> list[int]:
        """Symbols for one normalised chunk ``[T, D]`` (END not included)."""

    @abstractmethod
    def decode(self, symbols: Sequence[int], chunk: int, action_dim: int) -> np.ndarray:
        """Normalised chunk ``[chunk, action_dim]`` (float32, clipped to ``[-1, 1]``) from
        symbols; malformed input is padded / truncated, never an exception."""

    @abstractmethod
    def grammar(self, chunk: int, action_dim: int) -> Grammar:
        """A fresh decoding state machine for one row."""

    def steps_of(self, symbols: Sequence[int], action_dim: int) -> list[int] | None:
        """Timestep each symbol describes (to mask padded steps out of the loss), or
        ``None`` when symbols mix timesteps (FAST)."""
        return None

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""

    @classmethod
    def create(cls, chunk: int, action_dim: int, **options: Any) -> ActionTokenizer:
        """A new tokenizer for chunks ``[chunk, action_dim]`` from its ``options`` (the
        default ignores the shape: only shape-bound tokenizers such as FAST need it)."""
        return cls(**options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionTokenizer:
        """Rebuild from :meth:`config`'s fields (``to_json`` without ``kind``)."""
        return cls(**data)

    def to_json(self) -> str:
        """Everything needed to rebuild the tokenizer (read by ``tokenizer_from_json``)."""
        return json.dumps({"kind": self.kind, **self.config()})

    def save(self, directory: str | Path) -> None:
        """Write the tokenizer to ``directory`` (re-created by ``load_action_tokenizer``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(self.to_json())


def check_chunk(chunk: np.ndarray) -> np.ndarray:
    """Validate a ``[T, D]`` chunk and return it as float64 clipped to ``[-1, 1]``."""
    arr = np.asarray(chunk, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"An action chunk must be [T, D]; got shape {arr.shape}. Encode one row at a time.")
    if not np.isfinite(arr).all():
        raise ValueError("Action chunk contains NaN or inf; normalise the actions before tokenizing.")
    return np.clip(arr, -1.0, 1.0)
