"""What the evaluator and the policy server need of a policy: chunks of raw env actions.

``VLAPolicy`` (``vlaworks.models.policy``), the scripted expert and the server's remote
client all satisfy :class:`ChunkPolicy`, so rollouts never depend on model internals.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ChunkPolicy(Protocol):
    """Maps env observations (``vlaworks/envs/base.py`` format) to action chunks."""

    #: number of actions per predicted chunk (the evaluator may execute fewer)
    chunk_size: int

    def reset(self) -> None:
        """Forget any per-episode state before a new episode."""

    def predict_chunk(self, observations: list[dict[str, Any]]) -> np.ndarray:
        """``float32 [B, chunk_size, 7]`` raw env actions, one row per observation."""
