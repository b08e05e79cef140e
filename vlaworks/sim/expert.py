"""Scripted expert: a privileged state machine with tunable Gaussian action noise.

The expert reads the true sim state (object poses, contacts) of the environment it was
made for, and drives the EE through waypoints with a proportional controller. Each goal
is retried (up to :data:`MAX_ATTEMPTS` times) when a grasp slips or a drop misses, so
noisy demonstrations still end in success and contain natural recoveries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from vlaworks.miniature import EXPERT_NOISE_STREAM
from vlaworks.sim.scene import CUBE_HALF, MAX_ROTATION, MAX_TRANSLATION, REST_Z, Scene, SceneObject
from vlaworks.sim.tasks import DIRECTIONS, ResolvedGoal, goal_done

if TYPE_CHECKING:
    from vlaworks.envs.tabletop import TabletopEnv

MAX_ATTEMPTS = 3
CARRY_Z = 0.14
OPEN, CLOSE = -1.0, 1.0
#: Height of the release point's object bottom above the destination's reference.
RELEASE_BOTTOM = {"place_in": 0.046, "place_on": 0.022, "stack": 0.05}


def grasp_yaw(scene: Scene, obj: SceneObject) -> float:
    """Hand yaw that puts the fingers on two opposite faces (cubes), 0 for round objects."""
    if obj.kind != "cube":
        return 0.0
    yaw = scene.yaw(obj)
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def grasp_z(obj: SceneObject) -> float:
    """EE height for a grasp: a little below the object's centre, fingertips off the table."""
    return max(REST_Z[obj.kind] - 0.006, 0.014)


class ScriptedExpert:
    """``reset()`` then ``act(obs) -> float32[7]`` until the episode ends.

    ``noise`` is the std of Gaussian noise added to the six motion dimensions (action
    units); the gripper command stays clean because it is thresholded at zero anyway.
    ``clean_action`` holds the noise-free action of the latest ``act`` call: executing the
    noisy action while labelling with the clean one (DART-style) gives demonstrations that
    visit perturbed states yet teach only the corrective expert behaviour.
    """

    def __init__(self, env: TabletopEnv, noise: float = 0.0, seed: int | None = None) -> None:
        if noise < 0:
            raise ValueError(f"expert noise must be >= 0, got {noise}")
        self.env = env
        self.noise = float(noise)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._plan: Iterator[np.ndarray] | None = None
        self.clean_action = np.zeros(7, dtype=np.float32)

    def reset(self) -> None:
        """Start planning for the env's current episode (call after ``env.reset``)."""
        seed = self.seed if self.seed is not None else self.env.episode_seed
        self.rng = np.random.default_rng([seed, EXPERT_NOISE_STREAM])
        self._plan = self._run()

    def act(self, obs: dict | None = None) -> np.ndarray:
        """Next action; ``obs`` is accepted for the policy interface, the expert reads the sim."""
        if self._plan is None:
            self.reset()
        action = next(self._plan)
        self.clean_action = np.clip(action, -1.0, 1.0).astype(np.float32)
        if self.noise > 0:
            action = action.copy()
            action[:6] += self.rng.normal(0.0, self.noise, size=6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------ planning
    @property
    def scene(self) -> Scene:
        return self.env.scene

    def _run(self) -> Iterator[np.ndarray]:
        for rg in self.env.episode.goals:
            for _ in range(MAX_ATTEMPTS):
                if goal_done(rg, self.scene):
                    break
                if rg.goal.verb == "push":
                    yield from self._push(rg)
                else:
                    yield from self._pick_and_place(rg)
        grip = CLOSE if self.env.episode.goals[-1].goal.verb == "lift" else OPEN
        while True:  # hold still (keeping a lifted object) until the episode ends
            yield self._track(self.scene.ee_target, None, grip)

    def _track(self, target: np.ndarray, yaw: float | None, grip: float) -> np.ndarray:
        """Proportional action toward ``target`` (EE xyz) and ``yaw``; roll / pitch held at 0."""
        s = self.scene
        action = np.zeros(7)
        action[:3] = np.clip((target - s.ee_target) / MAX_TRANSLATION, -1.0, 1.0)
        rpy = s.rpy
        action[3:5] = np.clip(-rpy[:2] / MAX_ROTATION, -1.0, 1.0)
        if yaw is not None:
            action[5] = np.clip((yaw - rpy[2]) / MAX_ROTATION, -1.0, 1.0)
        action[6] = grip
        return action

    def _move(
        self, target, yaw: float | None, grip: float, tol: float = 0.006, steps: int = 60
    ) -> Iterator[np.ndarray]:
        """Go to a waypoint (a fixed point, or a callable re-evaluated every step)."""
        for _ in range(steps):
            goal = np.asarray(target() if callable(target) else target, dtype=np.float64)
            s = self.scene
            yaw_ok = yaw is None or abs(yaw - s.rpy[2]) < 0.05
            if np.linalg.norm(goal - s.ee_pos) < tol and np.linalg.norm(goal - s.ee_target) < tol and yaw_ok:
                return
            yield self._track(goal, yaw, grip)

    def _hold(self, grip: float, steps: int) -> Iterator[np.ndarray]:
        target = self.scene.ee_target
        for _ in range(steps):
            yield self._track(target, None, grip)

    def _pick_and_place(self, rg: ResolvedGoal) -> Iterator[np.ndarray]:
        s, obj = self.scene, rg.obj
        yield from self._move(s.ee_target * [1, 1, 0] + [0, 0, CARRY_Z], None, OPEN, tol=0.03)
        yaw = grasp_yaw(s, obj)

        def above(z: float):
            return lambda: np.array([*s.pos(obj)[:2], z])

        yield from self._move(above(0.1), yaw, OPEN, tol=0.008)
        yield from self._move(above(grasp_z(obj)), yaw, OPEN, tol=0.004)
        yield from self._hold(CLOSE, 6)
        yield from self._move(s.ee_target * [1, 1, 0] + [0, 0, CARRY_Z], yaw, CLOSE, tol=0.01)
        if not s.touching_gripper(obj):
            yield from self._hold(OPEN, 4)
            return
        if rg.goal.verb == "lift":
            yield from self._hold(CLOSE, 4)
            return
        dest = rg.dest
        yield from self._move(lambda: np.array([*s.pos(dest)[:2], CARRY_Z]), None, CLOSE, tol=0.006)
        base = s.pos(dest)[2] + (CUBE_HALF if rg.goal.verb == "stack" else 0.0)
        bottom = base + RELEASE_BOTTOM[rg.goal.verb]

        def release_point() -> np.ndarray:
            offset = s.pos(obj)[2] - REST_Z[obj.kind] - s.ee_pos[2]  # object bottom relative to EE
            return np.array([*s.pos(dest)[:2], bottom - offset])

        yield from self._move(release_point, None, CLOSE, tol=0.005, steps=40)
        yield from self._hold(OPEN, 5)
        yield from self._move(s.ee_target + [0, 0, 0.06], None, OPEN, tol=0.01)

    def _push(self, rg: ResolvedGoal) -> Iterator[np.ndarray]:
        s, obj = self.scene, rg.obj
        d = np.array([*DIRECTIONS[rg.goal.direction], 0.0])
        start = np.array([*rg.start_xy, 0.0])
        behind = s.pos(obj) * [1, 1, 0] - d * 0.06
        yield from self._move(s.ee_target * [1, 1, 0] + [0, 0, CARRY_Z], None, CLOSE, tol=0.03)
        yield from self._move(behind + [0, 0, CARRY_Z], 0.0, CLOSE, tol=0.008)
        yield from self._move(behind + [0, 0, 0.025], 0.0, CLOSE, tol=0.005)
        yield from self._move(start + d * 0.07 + [0, 0, 0.025], 0.0, CLOSE, tol=0.006)
        yield from self._move(s.ee_target + [0, 0, 0.08], None, CLOSE, tol=0.01)
