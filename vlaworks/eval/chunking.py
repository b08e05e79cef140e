"""Chunk execution modes (seed 003, §3.3; ACT §3.3): how the actions of predicted chunks run.

A policy predicts a chunk of ``T`` actions; the evaluator executes

* ``"full"``: all ``T`` actions, then re-plans;
* ``"half"``: the first ``ceil(T / 2)`` actions;
* ``"1"`` (or any positive integer ``k``): the first ``min(k, T)`` actions;
* ``"ensemble"`` (or ``"ensemble:M"``): ACT's temporal ensembling. The policy is queried at
  every step; the executed action is the weighted mean of what every still-valid chunk
  predicted for this step, with weight ``exp(-M * i)`` for the ``i``-th oldest prediction
  (ACT's ``m = 0.01`` by default: older predictions weigh slightly more).
"""

from __future__ import annotations

import math

import numpy as np

CHUNK_EXEC_MODES = ("full", "half", "1", "ensemble")
ENSEMBLE = "ensemble"
#: ACT's temporal-ensembling decay ``m`` (Zhao et al., 2023)
ENSEMBLE_DECAY = 0.01


def validate_chunk_exec(mode: str) -> str:
    """Return ``mode`` normalised (stripped, lower case) or raise naming the valid modes."""
    norm = str(mode).strip().lower()
    if norm in ("full", "half"):
        return norm
    if norm.isdigit() and int(norm) > 0:
        return str(int(norm))
    if norm == ENSEMBLE or norm.startswith(ENSEMBLE + ":"):
        ensemble_decay(norm)
        return norm
    raise ValueError(
        f"Unknown chunk execution mode {mode!r}; use 'full', 'half', 'ensemble[:M]' or a positive "
        "integer such as '1'."
    )


def is_ensemble(mode: str) -> bool:
    """Whether ``mode`` asks for temporal ensembling (one prediction per step)."""
    return validate_chunk_exec(mode).startswith(ENSEMBLE)


def ensemble_decay(mode: str) -> float:
    """The decay ``M`` of an ``"ensemble[:M]"`` mode (``ENSEMBLE_DECAY`` when not given)."""
    _, _, value = str(mode).strip().lower().partition(":")
    if not value:
        return ENSEMBLE_DECAY
    try:
        decay = float(value)
    except ValueError:
        decay = math.nan
    if not math.isfinite(decay) or decay < 0:
        raise ValueError(f"Temporal ensembling needs a finite decay M >= 0 ('ensemble:0.01'); got {mode!r}.")
    return decay


def actions_per_chunk(mode: str, chunk_len: int) -> int:
    """Number of actions to execute from a chunk of ``chunk_len`` actions under ``mode``."""
    if chunk_len < 1:
        raise ValueError(f"A predicted chunk must hold at least one action; got length {chunk_len}.")
    norm = validate_chunk_exec(mode)
    if norm == "full":
        return chunk_len
    if norm == "half":
        return (chunk_len + 1) // 2
    if norm.startswith(ENSEMBLE):
        return 1
    return min(int(norm), chunk_len)


class TemporalEnsembler:
    """Per-env buffers of the chunks predicted at each step, combined ACT-style."""

    def __init__(self, n_envs: int, decay: float = ENSEMBLE_DECAY) -> None:
        self.decay = float(decay)
        self._chunks: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n_envs)]

    def action(self, env: int, step: int, chunk: np.ndarray) -> np.ndarray:
        """Record ``chunk`` (``[T, D]``, predicted at ``step``) for ``env``; return the action to
        execute at ``step``: the weighted mean over all chunks still covering ``step``, oldest first."""
        kept = [(start, c) for start, c in self._chunks[env] if step - start < len(c)]
        kept.append((step, np.asarray(chunk, dtype=np.float32)))
        self._chunks[env] = kept
        actions = np.stack([c[step - start] for start, c in kept])
        weights = np.exp(-self.decay * np.arange(len(kept)))
        return (weights[:, None] * actions).sum(0) / weights.sum()
