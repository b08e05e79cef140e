"""Closed-loop rollouts: N envs stepped in lockstep, one ``predict_chunk`` call for all.

Episode ``k`` of task ``t`` always starts from ``env.reset(seed=episode_seed(base, t, k),
options={"episode": k})`` (a benchmark with fixed initial states, LIBERO, starts episode
``k`` from its ``k``-th; other envs draw the scene from the seed) and the global numpy /
torch generators are re-seeded per group of episodes, so two policies see the same initial
states and a run is reproducible whatever the number of worker processes.
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlaworks.envs.base import ACTION_DIM
from vlaworks.eval.chunking import TemporalEnsembler, actions_per_chunk, ensemble_decay, is_ensemble
from vlaworks.eval.results import EpisodeResult
from vlaworks.eval.video import tile_views, write_video

if TYPE_CHECKING:
    from vlaworks.policy_api import ChunkPolicy


def episode_seed(base_seed: int, task: str, episode: int) -> int:
    """Reset seed of episode ``episode`` of ``task``: a stable hash of (base seed, task, episode).

    A cryptographic hash (not Python's salted ``hash``) keeps seeds identical across
    processes, machines and runs.
    """
    digest = hashlib.blake2b(f"{base_seed}/{task}/{episode}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run: its suite, task id, index within the task, reset seed, and video flag."""

    suite: str
    task: str
    episode: int
    seed: int
    record: bool = False


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and (when already imported) torch, for stochastic policies."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def video_name(spec: EpisodeSpec, success: bool) -> str:
    """Relative path of an episode's video, e.g. ``videos/spatial/spatial__pick_ep000_success.mp4``."""
    task = spec.task.replace("/", "__")
    outcome = "success" if success else "fail"
    return f"videos/{spec.suite}/{task}_ep{spec.episode:03d}_{outcome}.mp4"


def _check_chunk(chunk: Any, n: int) -> np.ndarray:
    arr = np.asarray(chunk, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] != n or arr.shape[2] != ACTION_DIM or arr.shape[1] < 1:
        raise ValueError(
            f"predict_chunk must return [B={n}, T, {ACTION_DIM}] actions; got shape {arr.shape}. "
            "Return one chunk per observation, in raw env action units."
        )
    if not np.isfinite(arr).all():
        raise ValueError("predict_chunk returned NaN or inf actions; check the policy's normalisation stats.")
    return arr


def run_episodes(
    envs: Sequence[Any],
    policy: ChunkPolicy,
    specs: Sequence[EpisodeSpec],
    chunk_exec: str = "full",
    video_root: Path | None = None,
    fps: int = 20,
) -> list[EpisodeResult]:
    """Run ``specs[i]`` in ``envs[i]`` in lockstep and return one result per spec.

    Each round the policy sees the latest observation of every env (finished envs repeat
    their last one, so the batch keeps its size and row order) and returns a chunk per
    env; the first ``actions_per_chunk(chunk_exec, T)`` actions of each chunk are executed
    in unfinished envs before the next prediction (with ``"ensemble"``, one action per
    prediction: the temporal ensemble of every chunk covering that step). An episode ends when the env reports
    success, ``terminated`` or ``truncated``, or after ``env.max_episode_steps`` steps.
    """
    if len(envs) != len(specs):
        raise ValueError(f"run_episodes got {len(envs)} envs for {len(specs)} episode specs; pass one each.")
    n = len(specs)
    seed_everything(specs[0].seed)
    observations = [
        env.reset(seed=spec.seed, options={"episode": spec.episode})[0]
        for env, spec in zip(envs, specs, strict=True)
    ]
    instructions = [str(obs.get("instruction", "")) for obs in observations]
    policy.reset()
    limits = [int(env.max_episode_steps) for env in envs]
    done = [False] * n
    success = [False] * n
    length = [0] * n
    predictions = [0] * n
    frames: list[list[np.ndarray] | None] = [
        [tile_views(obs["images"], env.camera_names)] if spec.record and video_root is not None else None
        for env, spec, obs in zip(envs, specs, observations, strict=True)
    ]
    ensembler = TemporalEnsembler(n, ensemble_decay(chunk_exec)) if is_ensemble(chunk_exec) else None
    while not all(done):
        chunk = _check_chunk(policy.predict_chunk(list(observations)), n)
        steps = actions_per_chunk(chunk_exec, chunk.shape[1])
        if ensembler is not None:
            chunk = np.stack([
                ensembler.action(i, length[i], chunk[i])[None] if not done[i] else chunk[i, :1]
                for i in range(n)
            ])
        for i in range(n):
            predictions[i] += not done[i]
        for j in range(steps):
            for i in range(n):
                if done[i]:
                    continue
                obs, _, terminated, truncated, info = envs[i].step(chunk[i, j])
                observations[i] = obs
                length[i] += 1
                success[i] = success[i] or bool(info.get("success", False))
                if frames[i] is not None:
                    frames[i].append(tile_views(obs["images"], envs[i].camera_names))
                done[i] = bool(terminated or truncated or success[i] or length[i] >= limits[i])
            if all(done):
                break
    results = []
    for i, spec in enumerate(specs):
        video = None
        if frames[i] is not None and video_root is not None:
            video = video_name(spec, success[i])
            write_video(frames[i], Path(video_root) / video, fps=fps)
        results.append(
            EpisodeResult(
                suite=spec.suite,
                task=spec.task,
                episode=spec.episode,
                seed=spec.seed,
                success=success[i],
                length=length[i],
                instruction=instructions[i],
                predictions=predictions[i],
                video=video,
            )
        )
    return results
