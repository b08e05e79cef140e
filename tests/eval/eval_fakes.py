"""A tiny gymnasium env following the ``vlaworks.envs.base`` contract, plus fake policies.

``FakeReachEnv``: a point on a line must reach a goal drawn from the reset seed. Its
expert and policies read the goal from ``state``; everything here is top level so spawn
workers can unpickle the factories. The module has a unique name (not ``conftest``) because
spawn workers re-import it by name, and several test folders have a ``conftest``.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

TASKS = {"toy": ["toy/reach", "toy/reach_far"]}


class FakeReachEnv(gym.Env):
    """1-D reach: ``state = [pos, goal, 0, 0, 0, 0, 0]``; success when ``|pos - goal| < 0.05``."""

    camera_names = ("base", "wrist")

    def __init__(
        self,
        suite: str = "toy",
        task: str | None = None,
        image_size: int = 16,
        perturbations: tuple[str, ...] = (),
        max_episode_steps: int = 30,
    ) -> None:
        self.max_episode_steps = max_episode_steps
        self.tasks = list(TASKS[suite])
        self.task = task or self.tasks[0]
        self.image_size = image_size
        self.perturbations = tuple(perturbations)
        self.scale = 2.0 if self.task.endswith("far") else 1.0
        self.pos = 0.0
        self.goal = 0.0
        self.steps = 0
        self.closed = False

    @property
    def instruction(self) -> str:
        return f"reach {self.goal:.2f}"

    def _obs(self) -> dict:
        level = int(np.clip((self.pos + 2.0) / 4.0 * 255, 0, 255))
        base = np.full((self.image_size, self.image_size, 3), level, dtype=np.uint8)
        wrist = np.full((self.image_size, self.image_size, 3), 255 - level, dtype=np.uint8)
        state = np.array([self.pos, self.goal, 0, 0, 0, 0, 0], dtype=np.float32)
        return {"images": {"base": base, "wrist": wrist}, "state": state, "instruction": self.instruction}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.goal = float(self.np_random.uniform(0.3, 1.0) * self.scale)
        self.pos = 0.0
        self.steps = 0
        return self._obs(), {"success": False, "task": self.task}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float32)
        assert action.shape == (7,)
        self.pos += 0.1 * float(np.clip(action[0], -1, 1))
        self.steps += 1
        success = abs(self.pos - self.goal) < 0.05
        return self._obs(), float(success), success, False, {"success": success, "task": self.task}

    def close(self) -> None:
        self.closed = True

    def expert(self) -> FakeExpert:
        return FakeExpert(self)


class FakeExpert:
    """Privileged expert: reads the env's goal directly; adds noise from the env's seeded rng."""

    def __init__(self, env: FakeReachEnv) -> None:
        self.env = env
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, obs: dict) -> np.ndarray:
        a = np.zeros(7, dtype=np.float32)
        a[0] = np.clip((self.env.goal - self.env.pos) / 0.1, -1, 1) + self.env.np_random.normal(0, 0.05)
        return a


def make_fake_env(suite: str, task: str | None, **kwargs) -> FakeReachEnv:
    return FakeReachEnv(suite, task, **kwargs)


class GreedyChunkPolicy:
    """Predicts ``chunk_size`` copies of the greedy action (plus global-numpy noise) from state."""

    def __init__(self, chunk_size: int = 4, noise: float = 0.0) -> None:
        self.chunk_size = chunk_size
        self.noise = noise
        self.calls: list[int] = []

    def reset(self) -> None:
        self.calls.clear()

    def predict_chunk(self, observations: list[dict]) -> np.ndarray:
        self.calls.append(len(observations))
        out = np.zeros((len(observations), self.chunk_size, 7), dtype=np.float32)
        for i, obs in enumerate(observations):
            pos, goal = obs["state"][:2]
            out[i, :, 0] = np.clip((goal - pos) / 0.1, -1, 1)
        out[:, :, 0] += self.noise * np.random.standard_normal((len(observations), self.chunk_size))
        return out


def noisy_policy(envs: Sequence[FakeReachEnv]) -> GreedyChunkPolicy:
    return GreedyChunkPolicy(chunk_size=4, noise=0.6)


def greedy_policy(envs: Sequence[FakeReachEnv]) -> GreedyChunkPolicy:
    return GreedyChunkPolicy(chunk_size=4)
