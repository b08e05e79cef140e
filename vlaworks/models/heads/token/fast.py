"""FAST action tokens (seed 003 §4.4; Pertsch et al. 2025, used by pi0-FAST).

A normalised chunk ``[T, D]`` is compressed in three steps:

1. DCT-II (``scipy.fft.dct``, ``norm="ortho"``) over time, per dimension;
2. scale and round the coefficients to integers (``scale`` trades size for precision);
3. flatten frequency-major (all dimensions' lowest frequency first, interleaved) and
   run byte-pair encoding over the integer symbols. Each integer becomes one Unicode
   character of the private-use area so the ``tokenizers`` BPE can merge frequent
   runs (mostly the zero high-frequency tails).

:meth:`FastTokenizer.fit` learns the integer range and the BPE merges from a
dataset's chunks; the result is saved next to the policy with :meth:`save`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct, idct
from tokenizers import Tokenizer, models, trainers

from vlaworks.models.heads.token.base import CONFIG_FILE, ActionTokenizer, Grammar, check_chunk

_BASE = 0xE000  # first private-use code point: one character per quantised coefficient
_MAX_RANGE = 0xF8FF - _BASE + 1


class _FreeGrammar(Grammar):
    """Any symbol or END, at most ``max_len`` symbols (then only END)."""

    def __init__(self, n_symbols: int, max_len: int) -> None:
        self._any = np.ones(n_symbols + 1, dtype=bool)
        self._end = np.zeros(n_symbols + 1, dtype=bool)
        self._end[-1] = True
        self._left, self._done = max_len, False

    def allowed(self) -> np.ndarray:
        if self._done:
            return np.zeros_like(self._any)
        return self._any if self._left > 0 else self._end

    def push(self, symbol: int) -> None:
        if not (0 <= symbol < self._any.size and self.allowed()[symbol]):
            raise ValueError(f"FAST grammar: symbol {symbol} not allowed ({self._left} symbols left).")
        if symbol == self._any.size - 1:
            self._done = True
        else:
            self._left -= 1

    @property
    def done(self) -> bool:
        return self._done


class FastTokenizer(ActionTokenizer):
    """DCT + quantisation + BPE over a fixed chunk shape ``[chunk, action_dim]``."""

    kind = "fast"

    def __init__(self, chunk: int, action_dim: int = 7, scale: float = 10.0, vocab_size: int = 1024) -> None:
        if chunk < 1 or action_dim < 1 or scale <= 0:
            raise ValueError(
                "FastTokenizer needs chunk >= 1, action_dim >= 1, scale > 0; "
                f"got {chunk}, {action_dim}, {scale}."
            )
        self.chunk, self.action_dim, self.scale, self.vocab_size = chunk, action_dim, scale, vocab_size
        self.min_coeff = 0
        self.max_coeff = 0
        self._bpe: Tokenizer | None = None

    # --- fitting ------------------------------------------------------------------------------
    def coefficients(self, chunk: np.ndarray) -> np.ndarray:
        """Quantised DCT coefficients ``[T, D]`` (integers, before range clipping)."""
        arr = check_chunk(chunk)
        if arr.shape != (self.chunk, self.action_dim):
            raise ValueError(
                f"FastTokenizer was built for chunks of shape {(self.chunk, self.action_dim)}; "
                f"got {arr.shape}."
            )
        return np.rint(dct(arr, type=2, axis=0, norm="ortho") * self.scale).astype(np.int64)

    def _text(self, coeffs: np.ndarray) -> str:
        flat = np.clip(coeffs, self.min_coeff, self.max_coeff).reshape(-1) - self.min_coeff + _BASE
        return "".join(map(chr, flat.tolist()))

    def fit(self, chunks: np.ndarray) -> FastTokenizer:
        """Learn the coefficient range and the BPE merges from ``chunks`` ``[N, T, D]``."""
        chunks = np.asarray(chunks)
        if chunks.ndim != 3 or chunks.shape[1:] != (self.chunk, self.action_dim) or len(chunks) == 0:
            raise ValueError(
                f"FastTokenizer.fit expects [N, {self.chunk}, {self.action_dim}] with N >= 1; "
                f"got {chunks.shape}."
            )
        coeffs = [self.coefficients(c) for c in chunks]
        stacked = np.stack(coeffs)
        self.min_coeff, self.max_coeff = int(stacked.min()), int(stacked.max())
        alphabet_size = self.max_coeff - self.min_coeff + 1
        if alphabet_size > _MAX_RANGE:
            raise ValueError(
                f"Quantised DCT coefficients span {alphabet_size} values (> {_MAX_RANGE}); lower scale "
                f"(now {self.scale}) or check that the actions are normalised to [-1, 1]."
            )
        if self.vocab_size < alphabet_size:
            raise ValueError(
                f"FAST vocab_size={self.vocab_size} is smaller than the {alphabet_size} coefficient values "
                f"seen in the data; use vocab_size >= {alphabet_size} or a smaller scale."
            )
        alphabet = [chr(_BASE + i) for i in range(alphabet_size)]
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size, initial_alphabet=alphabet, show_progress=False, special_tokens=[]
        )
        bpe.train_from_iterator((self._text(c) for c in coeffs), trainer=trainer, length=len(coeffs))
        self._bpe = bpe
        return self

    def fit_report(self, chunks: np.ndarray) -> dict[str, float]:
        """How well this fitted tokenizer codes ``chunks`` ``[N, T, D]`` (normalised units):
        mean and max absolute reconstruction error of decode(encode(chunk)) and the mean
        number of tokens per chunk (against ``T * D`` for bins)."""
        chunks = np.asarray(chunks, dtype=np.float32)
        if chunks.ndim != 3 or len(chunks) == 0:
            raise ValueError(f"fit_report expects [N, T, D] chunks with N >= 1; got {chunks.shape}.")
        codes = [self.encode(c) for c in chunks]
        errors = np.abs(np.stack([self.decode(t, self.chunk, self.action_dim) for t in codes]) - chunks)
        return {
            "chunks": len(chunks),
            "mean_abs_error": float(errors.mean()),
            "max_abs_error": float(errors.max()),
            "tokens_per_chunk": float(np.mean([len(t) for t in codes])),
            "vocab_size": self.n_symbols,
        }

    @property
    def bpe(self) -> Tokenizer:
        if self._bpe is None:
            raise RuntimeError("FastTokenizer is not fitted; call fit(chunks) or FastTokenizer.load(dir).")
        return self._bpe

    # --- the tokenizer contract ---------------------------------------------------------------
    @property
    def n_symbols(self) -> int:
        return self.bpe.get_vocab_size()

    def encode(self, chunk: np.ndarray) -> list[int]:
        return self.bpe.encode(self._text(self.coefficients(chunk))).ids

    def decode(self, symbols: Sequence[int], chunk: int, action_dim: int) -> np.ndarray:
        if (chunk, action_dim) != (self.chunk, self.action_dim):
            raise ValueError(
                f"FastTokenizer decodes chunks of shape {(self.chunk, self.action_dim)}; "
                f"asked for {(chunk, action_dim)}."
            )
        bpe, need = self.bpe, self.chunk * self.action_dim
        pieces = (bpe.id_to_token(int(s)) for s in symbols)
        text = "".join(p for p in pieces if p is not None)
        values = [ord(c) - _BASE + self.min_coeff for c in text if _BASE <= ord(c) < _BASE + _MAX_RANGE]
        flat = np.zeros(need, dtype=np.float64)
        flat[: min(need, len(values))] = values[:need]
        coeffs = flat.reshape(self.chunk, self.action_dim) / self.scale
        return np.clip(idct(coeffs, type=2, axis=0, norm="ortho"), -1.0, 1.0).astype(np.float32)

    def grammar(self, chunk: int, action_dim: int) -> Grammar:
        return _FreeGrammar(self.n_symbols, chunk * action_dim)

    def config(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk,
            "action_dim": self.action_dim,
            "scale": self.scale,
            "vocab_size": self.vocab_size,
            "min_coeff": self.min_coeff,
            "max_coeff": self.max_coeff,
        }

    # --- persistence ----------------------------------------------------------------------------
    def to_json(self) -> str:
        """Config plus the BPE model (when fitted) as one JSON document."""
        data = {"kind": self.kind, **self.config()}
        if self._bpe is not None:
            data["bpe"] = self._bpe.to_str()
        return json.dumps(data)

    @classmethod
    def create(cls, chunk: int, action_dim: int, **options: Any) -> FastTokenizer:
        """An unfitted tokenizer for chunks ``[chunk, action_dim]`` (``scale``, ``vocab_size``)."""
        return cls(chunk, action_dim, **options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FastTokenizer:
        """Rebuild from the fields of :meth:`to_json` (fitted if ``bpe`` is present)."""
        tok = cls(data["chunk"], data["action_dim"], data["scale"], data["vocab_size"])
        tok.min_coeff, tok.max_coeff = data["min_coeff"], data["max_coeff"]
        if "bpe" in data:
            tok._bpe = Tokenizer.from_str(data["bpe"])
        return tok

    @classmethod
    def load(cls, directory: str | Path) -> FastTokenizer:
        """Re-create a tokenizer written by :meth:`save`."""
        return cls.from_dict(json.loads((Path(directory) / CONFIG_FILE).read_text()))
