"""Chunk execution modes (seed 003, §3.3): how many actions of a predicted chunk run.

A policy predicts a chunk of ``T`` actions; the evaluator executes

* ``"full"``: all ``T`` actions, then re-plans;
* ``"half"``: the first ``ceil(T / 2)`` actions;
* ``"1"`` (or any positive integer ``k``): the first ``min(k, T)`` actions.
"""

from __future__ import annotations

CHUNK_EXEC_MODES = ("full", "half", "1")


def validate_chunk_exec(mode: str) -> str:
    """Return ``mode`` normalised (stripped, lower case) or raise naming the valid modes."""
    norm = str(mode).strip().lower()
    if norm in ("full", "half"):
        return norm
    if norm.isdigit() and int(norm) > 0:
        return str(int(norm))
    raise ValueError(
        f"Unknown chunk execution mode {mode!r}; use 'full', 'half' or a positive integer such as '1'."
    )


def actions_per_chunk(mode: str, chunk_len: int) -> int:
    """Number of actions to execute from a chunk of ``chunk_len`` actions under ``mode``."""
    if chunk_len < 1:
        raise ValueError(f"A predicted chunk must hold at least one action; got length {chunk_len}.")
    norm = validate_chunk_exec(mode)
    if norm == "full":
        return chunk_len
    if norm == "half":
        return (chunk_len + 1) // 2
    return min(int(norm), chunk_len)
