"""Meta-World (``metaworld`` 3.1.1, v3 tasks) behind the env interface of :mod:`vlaworks.envs.base`.

Observation: ``{"images": {cam: uint8[H, W, 3]}, "state": float32[7], "instruction": str}``,
the tabletop's contract:

* images come from our own ``mujoco.Renderer`` on the Meta-World env's model and data
  (shadows off, no multisampling, as the tabletop renders, and no floor / wall reflections,
  which draw the scene a second time: a third of the render time; Meta-World's stock
  renderer runs at ~10 steps/s). ``base`` is Meta-World's ``corner4`` view, ``wrist`` its hand-mounted
  ``gripperPOV`` camera (it moves with the hand; the hand never rotates in Meta-World). The
  model's other cameras are available under their own names (``corner``, ``corner2``,
  ``corner3``, ``topview``, ``behindGripper``). The corner cameras render upside down and
  are turned by 180 degrees (``img[::-1, ::-1]``);
* ``state`` is the tabletop's proprio layout: hand x, y, z (m), roll / pitch / yaw (always 0:
  Meta-World's hand keeps one orientation) and the finger opening (m);
* ``instruction`` is one fixed sentence per task (:data:`INSTRUCTIONS`).

Action: our 7-D convention, ``(dx, dy, dz, droll, dpitch, dyaw, gripper)`` in ``[-1, 1]``;
the rotations are ignored and ``(dx, dy, dz, gripper)`` is Meta-World's 4-D action (its
gripper sign is ours: -1 opens, +1 closes). Demonstrations record zeros for the rotations,
so every action head and the evaluator work unchanged.

``info``: ``"success"`` (Meta-World's ``info["success"]``), ``"task"`` (``"mt10/reach-v3"``),
``"instruction"``. The reward is Meta-World's shaped reward. Episodes terminate on success
and truncate after ``max_episode_steps`` (the protocol's 500 by default).

Reset seed ``s`` fixes the episode: Meta-World's seeded sampler (``seed(s)`` with
``seeded_rand_vec``) draws the object and goal positions from the task's random-reset space.
The scripted expert of each task (``metaworld.policies``) reads Meta-World's own state
vector (goal included), which the adapter keeps beside the observation (:meth:`expert`).

MuJoCo 4.0 compatibility: Meta-World 3.1.1 pins ``mujoco==3.3.0`` and writes 11 numbers
into each weld constraint's ``eq_data`` row, which MuJoCo 4.0 grew to 12 (the last flags a
relative pose to recompute). The adapter's subclass of each task writes the same weld
(zero anchor and offset, quaternion (-1, 0, 0, 0), torque scale 5) as a row of the running
MuJoCo's length, the extra flag zero, so the relative pose stays as given.
"""

from __future__ import annotations

import string
import warnings
from functools import cache
from typing import Any

import gymnasium as gym
import numpy as np

from vlaworks.sim.render import make_renderer, mujoco  # first: it picks the GL back-end

try:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP
except ImportError as err:  # an optional dependency
    raise ImportError(
        "Meta-World is not installed. Install it beside our MuJoCo with "
        "`pip install --no-deps metaworld==3.1.1` (scripts/setup.sh does)."
    ) from err

from vlaworks.envs.base import ACTION_DIM, GRIPPER_INDEX
from vlaworks.envs.metaworld_protocol import PROTOCOLS
from vlaworks.miniature import EXPERT_NOISE_STREAM
from vlaworks.sim.scene import STATE_DIM

#: our camera name -> the Meta-World model's camera
CAMERAS: dict[str, str] = {
    "base": "corner4",
    "wrist": "gripperPOV",
    **{c: c for c in ("corner", "corner2", "corner3", "topview", "behindGripper")},
}
#: Meta-World cameras that render upside down
FLIPPED = frozenset({"corner", "corner2", "corner3", "corner4"})

INSTRUCTIONS: dict[str, str] = {
    "reach-v3": "reach the red goal",
    "push-v3": "push the red puck to the green goal",
    "pick-place-v3": "pick up the red puck and place it at the blue goal",
    "door-open-v3": "open the door",
    "drawer-open-v3": "open the drawer",
    "drawer-close-v3": "close the drawer",
    "button-press-topdown-v3": "press the button from the top",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
}

#: Meta-World's state vector: hand xyz, then the finger distance divided by this (m)
FINGER_SCALE = 0.1
#: control rate (Hz): 5 physics steps of 2.5 ms per action
FPS = 80


def to_metaworld(action: np.ndarray) -> np.ndarray:
    """Our 7-D action -> Meta-World's ``(dx, dy, dz, gripper)``, clipped to ``[-1, 1]``."""
    a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
    return np.array([a[0], a[1], a[2], a[GRIPPER_INDEX]], dtype=np.float32)


def from_metaworld(action: np.ndarray) -> np.ndarray:
    """Meta-World's 4-D action -> our 7-D action (zero rotations), clipped to ``[-1, 1]``."""
    a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
    out = np.zeros(ACTION_DIM, dtype=np.float32)
    out[:3], out[GRIPPER_INDEX] = a[:3], a[3]
    return out


def _reset_mocap_welds(env: Any) -> None:
    """Meta-World's mocap weld, written as a row of this MuJoCo's ``eq_data`` length."""
    model = env.model
    if model.nmocap == 0:
        return
    row = np.zeros(model.eq_data.shape[1])
    row[6], row[10] = -1.0, 5.0  # relative quaternion (-1, 0, 0, 0); torque scale 5
    for i in range(model.neq):
        if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
            model.eq_data[i] = row


@cache
def task_class(name: str) -> type:
    """Meta-World's environment class of task ``name``, with the weld written for any MuJoCo."""
    base = ALL_V3_ENVIRONMENTS[name]
    return type(base.__name__, (base,), {"reset_mocap_welds": _reset_mocap_welds})


def suite_task_names(suite: str) -> tuple[str, ...]:
    """The Meta-World task names of ``suite`` (``"mt10"``)."""
    if suite not in PROTOCOLS:
        raise ValueError(f"unknown Meta-World suite {suite!r}; choose from {sorted(PROTOCOLS)}")
    return PROTOCOLS[suite].tasks


class MetaWorldEnv(gym.Env):
    """One Meta-World suite; ``task=None`` cycles through the suite's tasks by seed.

    ``task`` is a task name (``"reach-v3"``) or id (``"mt10/reach-v3"``). Episode seed ``s``
    picks task ``tasks[s % len(tasks)]`` when no task is fixed. ``perturbations`` exists for
    the evaluator's env interface; Meta-World has none, so it must be empty.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(
        self,
        suite: str = "mt10",
        task: str | None = None,
        image_size: int = 128,
        cameras: tuple[str, ...] | list[str] = ("base", "wrist"),
        max_episode_steps: int | None = None,
        perturbations: tuple[str, ...] | list[str] = (),
    ) -> None:
        names = suite_task_names(suite)
        self.suite = suite
        self.tasks = [f"{suite}/{n}" for n in names]
        if task is not None:
            name = task.removeprefix(f"{suite}/")
            if name not in names:
                raise ValueError(
                    f"unknown task {task!r} of Meta-World suite {suite!r}; choose from {list(names)}"
                )
            task = name
        self.fixed_task = task
        bad = [c for c in cameras if c not in CAMERAS]
        if bad or not cameras:
            raise ValueError(f"unknown camera(s) {bad or list(cameras)}; choose from {list(CAMERAS)}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
        if perturbations:
            raise ValueError(
                f"Meta-World has no perturbations; got {list(perturbations)}. "
                "Drop --perturb for --env metaworld."
            )
        self.camera_names = tuple(cameras)
        self.image_size = image_size
        self.max_episode_steps = max_episode_steps or PROTOCOLS[suite].max_episode_steps
        img = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict({
            "images": gym.spaces.Dict({c: img for c in self.camera_names}),
            "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
            "instruction": gym.spaces.Text(max_length=256, charset=string.printable),
        })
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.task_name = ""
        self.episode_seed = 0
        self.instruction = ""
        self._mw: Any = None
        self._renderer: mujoco.Renderer | None = None
        self._mw_obs = np.zeros(0)
        self._steps = 0

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """New episode; the same ``seed`` gives the same positions, images and state."""
        super().reset(seed=seed)
        self.episode_seed = int(seed) if seed is not None else int(self.np_random.integers(1 << 31))
        names = suite_task_names(self.suite)
        self._load(self.fixed_task or names[self.episode_seed % len(names)])
        self._mw.seed(self.episode_seed)
        self._mw_obs, _ = self._mw.reset()
        self._steps = 0
        return self._observation(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        if self._mw is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {ACTION_DIM} finite numbers in [-1, 1]; got {action}")
        self._mw_obs, reward, _, _, mw_info = self._mw.step(to_metaworld(action))
        self._steps += 1
        done = bool(mw_info["success"])
        truncated = not done and self._steps >= self.max_episode_steps
        return self._observation(), float(reward), done, truncated, self._info(done)

    def render(self) -> np.ndarray:
        """The first camera's RGB frame (``render_mode="rgb_array"``)."""
        return self._image(self.camera_names[0])

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._mw is not None:
            self._mw.close()
            self._mw = None

    # ------------------------------------------------------------------ extras
    @property
    def task_id(self) -> str:
        return f"{self.suite}/{self.task_name}" if self.task_name else ""

    @property
    def privileged_observation(self) -> np.ndarray:
        """Meta-World's 39-D state vector of the current step (hand, objects, goal): the expert's input."""
        return self._mw_obs

    def expert(self, noise: float = 0.0, seed: int | None = None) -> MetaWorldExpert:
        """The current task's scripted expert (``reset()`` it after each ``env.reset``)."""
        return MetaWorldExpert(self, noise=noise, seed=seed)

    def _load(self, name: str) -> None:
        """Build task ``name``'s Meta-World env and its renderer (kept while the task stays)."""
        if name == self.task_name and self._mw is not None:
            return
        self.close()
        mw = task_class(name)()
        # Meta-World's own "goal observable" set-up (metaworld.env_dict), with a seeded sampler
        mw._partially_observable = False
        del mw.sawyer_observation_space  # recomputed with the goal in view
        mw._freeze_rand_vec = False
        mw.seeded_rand_vec = True
        mw._set_task_called = True
        mw.max_path_length = max(mw.max_path_length, self.max_episode_steps)
        mw.model.vis.quality.shadowsize = 0
        mw.model.vis.quality.offsamples = 0
        self._renderer = make_renderer(mw.model, self.image_size, self.image_size)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0  # a second scene pass
        self._mw = mw
        self.task_name = name
        self.instruction = INSTRUCTIONS[name]

    def _image(self, camera: str) -> np.ndarray:
        source = CAMERAS[camera]
        self._renderer.update_scene(self._mw.data, camera=source)
        rgb = self._renderer.render()
        return np.ascontiguousarray(rgb[::-1, ::-1]) if source in FLIPPED else rgb.copy()

    def _state(self) -> np.ndarray:
        state = np.zeros(STATE_DIM, dtype=np.float32)
        state[:3] = self._mw_obs[:3]
        state[-1] = self._mw_obs[3] * FINGER_SCALE
        return state

    def _observation(self) -> dict[str, Any]:
        images = {cam: self._image(cam) for cam in self.camera_names}
        return {"images": images, "state": self._state(), "instruction": self.instruction}

    def _info(self, done: bool) -> dict[str, Any]:
        return {"success": done, "task": self.task_id, "instruction": self.instruction}


class MetaWorldExpert:
    """Meta-World's scripted policy of the env's task: ``reset()`` then ``act(obs) -> float32[7]``.

    ``noise`` is the std of Gaussian noise added to x, y, z (action units); the gripper
    stays clean. ``clean_action`` holds the noise-free action of the latest ``act`` call
    (the label of a DART-style demonstration, as the tabletop expert's).
    """

    def __init__(self, env: MetaWorldEnv, noise: float = 0.0, seed: int | None = None) -> None:
        if noise < 0:
            raise ValueError(f"expert noise must be >= 0, got {noise}")
        self.env = env
        self.noise = float(noise)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.policy: Any = None
        self.clean_action = np.zeros(ACTION_DIM, dtype=np.float32)

    def reset(self) -> None:
        """Bind to the env's current task and seed the noise (call after ``env.reset``)."""
        seed = self.seed if self.seed is not None else self.env.episode_seed
        self.rng = np.random.default_rng([seed, EXPERT_NOISE_STREAM])
        self.policy = ENV_POLICY_MAP[self.env.task_name]()

    def act(self, obs: dict | None = None) -> np.ndarray:
        """Next action; ``obs`` is accepted for the policy interface, the expert reads the sim."""
        if self.policy is None:
            self.reset()
        with warnings.catch_warnings():  # the policies warn whenever a gain saturates the action
            warnings.simplefilter("ignore", UserWarning)
            raw = self.policy.get_action(self.env.privileged_observation)
        self.clean_action = from_metaworld(raw)
        action = self.clean_action.copy()
        if self.noise > 0:
            action[:3] += self.rng.normal(0.0, self.noise, size=3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

