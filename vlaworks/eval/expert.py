"""The privileged scripted expert as a :class:`~vlaworks.policy_api.ChunkPolicy`.

``vlaworks eval --policy expert`` runs the environment's own scripted expert through the
same rollout loop as a learned policy, which gives the upper reference row of every
results table and checks the evaluator end to end. The expert reads privileged
simulator state, so it is bound to the env instances it drives: observation ``i`` of
:meth:`ExpertPolicy.predict_chunk` must come from ``envs[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vlaworks.envs.base import ACTION_DIM


class ExpertPolicy:
    """Wraps ``env.expert()`` of each env; predicts chunks of one action."""

    chunk_size: int = 1

    def __init__(self, envs: Sequence[Any]) -> None:
        missing = [type(e).__name__ for e in envs if not callable(getattr(e, "expert", None))]
        if missing:
            raise TypeError(
                f"ExpertPolicy needs envs with an expert() method; {missing} have none. "
                "Only adapters with a scripted expert (e.g. the tabletop env) support --policy expert."
            )
        self._envs = list(envs)
        self._experts = [env.expert() for env in self._envs]

    def reset(self) -> None:
        """Start a new episode in every env: reset each expert's internal phase."""
        for expert in self._experts:
            expert.reset()

    def predict_chunk(self, observations: list[dict]) -> np.ndarray:
        """Return ``[B, 1, 7]`` expert actions, one per env, in raw env action units."""
        if len(observations) != len(self._experts):
            raise ValueError(
                f"ExpertPolicy is bound to {len(self._experts)} envs but got {len(observations)} "
                "observations; pass one observation per bound env, in the same order."
            )
        pairs = zip(self._experts, observations, strict=True)
        actions = [np.asarray(ex.act(obs), dtype=np.float32) for ex, obs in pairs]
        out = np.stack(actions)[:, None, :]
        if out.shape[-1] != ACTION_DIM:
            raise ValueError(f"Expert returned actions of size {out.shape[-1]}; expected {ACTION_DIM}.")
        return out
