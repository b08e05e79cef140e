"""The built-in MuJoCo tabletop world as a gymnasium ``Env`` (see :mod:`vlaworks.envs.base`).

Observation: ``{"images": {cam: uint8[H, W, 3]}, "state": float32[STATE_DIM],
"instruction": str}`` plus ``"depth": {cam: float32[H, W]}`` (metres) and
``"segmentation": {cam: int32[H, W]}`` (0 background, 1 gripper, >= 2 objects; see
:meth:`TabletopEnv.segmentation_labels`) when requested. ``info`` carries ``"success"``,
``"task"`` and ``"instruction"``. Episodes terminate on success and truncate at the task's
step limit (or ``max_episode_steps``). ``layout="random"`` (default) places objects anywhere
on the table; ``"fixed"`` gives each task LIBERO's fixed layout with small per-episode
jitter (:func:`vlaworks.sim.tasks.build_episode`).

``prompt_mode`` (:mod:`vlaworks.prompts`; ``text`` by default) gives every observation of an
episode the visual prompt a user would: the target object's ground-truth mask on
``prompt_camera`` in the episode's first frame (the target is the first goal's object, the
one PixelVLA's annotation finds at the first gripper-close frame), turned into that mode's
point / line / box / mask prompt or pixel mask and held for the whole episode (nothing when
the target is out of view).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from vlaworks.envs.base import ACTION_DIM
from vlaworks.prompts import check_prompt_mode, prompt_inputs
from vlaworks.sim import language, perturb
from vlaworks.sim.expert import ScriptedExpert
from vlaworks.sim.scene import FINGER_OPEN, HOME_POS, STATE_DIM, WORKSPACE_HIGH, WORKSPACE_LOW, Scene
from vlaworks.sim.tasks import Episode, build_episode, check_layout, get_task, success, suite_tasks

CAMERAS = ("base", "wrist")
#: Bounds of the proprio state: the EE workspace (plus slack for the hand's lag), angles, opening.
STATE_LOW = np.array([*(WORKSPACE_LOW - 0.1), -np.pi, -np.pi, -np.pi, 0.0], dtype=np.float32)
STATE_HIGH = np.array(
    [*(WORKSPACE_HIGH + 0.1), np.pi, np.pi, np.pi, 2 * FINGER_OPEN + 0.01], dtype=np.float32
)


class TabletopEnv(gym.Env):
    """One suite of the tabletop world; ``task=None`` cycles through the suite's tasks by seed.

    ``max_episode_steps`` is the longest step limit among the env's tasks until the first
    reset, then the current task's limit (or the constructor's ``max_episode_steps``).
    Episode seed ``s`` picks task ``tasks[s % len(tasks)]`` when no task is fixed.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        suite: str,
        task: str | None = None,
        image_size: int = 128,
        cameras: tuple[str, ...] | list[str] = CAMERAS,
        perturbations: tuple[str, ...] | list[str] = (),
        depth: bool = False,
        segmentation: bool = False,
        max_episode_steps: int | None = None,
        layout: str = "random",
        prompt_mode: str = "text",
        prompt_camera: str = "base",
    ) -> None:
        self.layout = check_layout(layout)
        self.prompt_mode = check_prompt_mode(prompt_mode)
        if self.prompt_mode != "text" and prompt_camera not in cameras:
            raise ValueError(
                f"prompt_camera {prompt_camera!r} is not one of the env's cameras {list(cameras)}."
            )
        self.prompt_camera = prompt_camera
        self._prompt: dict[str, Any] = {}
        self.tasks = suite_tasks(suite)
        self.suite = suite
        self.fixed_task = get_task(suite, task) if task is not None else None
        bad = [c for c in cameras if c not in CAMERAS]
        if bad or not cameras:
            raise ValueError(f"unknown camera(s) {bad or list(cameras)}; choose from {CAMERAS}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
        self.camera_names = tuple(cameras)
        self.image_size = image_size
        parsed = perturb.parse_perturbations(list(perturbations))
        #: family -> its Perturbation (severity > 0; severity 0 means clean)
        self.perturbations = {p.family: p for p in parsed if p.severity > 0}
        self.depth, self.segmentation = depth, segmentation
        self._max_steps_override = max_episode_steps
        limits = (
            [self.fixed_task.step_limit]
            if self.fixed_task
            else [get_task(suite, t).step_limit for t in self.tasks]
        )
        self.max_episode_steps = max_episode_steps or max(limits)
        self.scene = Scene(image_size)
        img = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        spaces: dict[str, gym.Space] = {
            "images": gym.spaces.Dict({c: img for c in self.camera_names}),
            "state": gym.spaces.Box(STATE_LOW, STATE_HIGH, (STATE_DIM,), np.float32),
            "instruction": gym.spaces.Text(max_length=256, charset=_CHARSET),
        }
        if depth:
            dep = gym.spaces.Box(0.0, np.inf, (image_size, image_size), np.float32)
            spaces["depth"] = gym.spaces.Dict({c: dep for c in self.camera_names})
        if segmentation:
            seg = gym.spaces.Box(0, 1 << 16, (image_size, image_size), np.int32)
            spaces["segmentation"] = gym.spaces.Dict({c: seg for c in self.camera_names})
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.episode: Episode | None = None
        self.episode_seed = 0
        self.instruction = ""
        self._steps = 0
        self._noise_rng = np.random.default_rng(0)
        self._noise: perturb.SensorNoise | None = None

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """New episode; the same ``seed`` gives the same layout, instruction, images and state."""
        super().reset(seed=seed)
        self.episode_seed = int(seed) if seed is not None else int(self.np_random.integers(1 << 31))
        s, p = self.episode_seed, self.perturbations
        task = self.fixed_task or get_task(self.suite, self.tasks[s % len(self.tasks)])
        self.scene.restore_defaults()
        ee_pos, ee_rpy = HOME_POS, None

        def stream(family: str) -> np.random.Generator:  # the family's own draws for this episode
            return perturb.family_rng(s, family)

        if "robot_init" in p:
            robot = p["robot_init"]
            ee_pos, ee_rpy = perturb.robot_init_pose(
                HOME_POS, robot.severity, stream("robot_init"), robot.calibration
            )
        lay = p.get("layout")
        self.episode = build_episode(
            task,
            self.scene,
            np.random.default_rng(s),
            n_distractors=perturb.n_distractors(lay.severity, lay.calibration) if lay else 0,
            distractor_rng=stream("layout"),
            ee_pos=ee_pos,
            ee_rpy=ee_rpy,
            layout=self.layout,
            displacement=perturb.layout_shift(lay.severity, lay.calibration) if lay else 0.0,
        )
        for family, apply in (("camera", perturb.apply_camera), ("lighting", perturb.apply_lighting)):
            if family in p:
                apply(self.scene, p[family].severity, stream(family), p[family].calibration)
        if "background" in p:
            perturb.apply_background(self.scene, p["background"].severity, stream("background"))
        self.scene.refresh()
        lang = p.get("language")
        tier = language.severity_tier(lang.severity, lang.calibration) if lang else 0
        self.instruction = language.instruction(self.episode, tier)
        self.episode.instruction = self.instruction
        self._noise_rng = stream("noise")
        self._noise = None
        if "noise" in p:
            self._noise = perturb.sensor_noise(p["noise"].severity, self._noise_rng, p["noise"].calibration)
        self._prompt = (
            prompt_inputs(self.prompt_mode, self.target_mask(), self.prompt_camera)
            if self.prompt_mode != "text"
            else {}
        )
        self._steps = 0
        self.max_episode_steps = self._max_steps_override or task.step_limit
        return self._observation(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {ACTION_DIM} finite numbers in [-1, 1]; got {action}")
        self.scene.apply_action(action)
        self._steps += 1
        done = success(self.episode, self.scene)
        truncated = not done and self._steps >= self.max_episode_steps
        return self._observation(), float(done), done, truncated, self._info(done)

    def render(self) -> np.ndarray:
        """The base camera's RGB frame (``render_mode="rgb_array"``)."""
        return self.scene.render("base")[0]

    def close(self) -> None:
        self.scene.close()

    # ------------------------------------------------------------------ extras
    @property
    def task_id(self) -> str:
        return self.episode.task.id if self.episode is not None else ""

    def expert(self, noise: float = 0.0, seed: int | None = None) -> ScriptedExpert:
        """A privileged scripted expert for this env (``reset()`` it after each ``env.reset``)."""
        return ScriptedExpert(self, noise=noise, seed=seed)

    def camera_matrices(self) -> dict[str, dict[str, np.ndarray]]:
        """Per camera: ``intrinsics`` (3x3, pixels) and ``extrinsics`` (4x4 world-from-camera, OpenCV)."""
        out = {}
        for cam in self.camera_names:
            k, t = self.scene.camera_matrices(cam)
            out[cam] = {"intrinsics": k, "extrinsics": t}
        return out

    def segmentation_labels(self) -> dict[int, str]:
        """Segmentation id -> name (``"gripper"``, ``"red cube"``, ...) for the current episode."""
        labels = {1: "gripper"}
        for o in self.scene.active_objects():
            labels[o.seg_id] = o.label
        return labels

    def target_mask(self, camera: str | None = None) -> np.ndarray:
        """Bool ``[H, W]`` pixels of the episode's target (its first goal's object) on ``camera``
        (default: ``prompt_camera``) as the scene stands now."""
        if self.episode is None:
            raise RuntimeError("call reset() before target_mask()")
        seg = self.scene.render(camera or self.prompt_camera, segmentation=True)[2]
        return seg == self.episode.goals[0].obj.seg_id

    def success(self) -> bool:
        return self.episode is not None and success(self.episode, self.scene)

    def _info(self, done: bool) -> dict[str, Any]:
        return {"success": bool(done), "task": self.task_id, "instruction": self.instruction}

    def _observation(self) -> dict[str, Any]:
        masking = self.perturbations.get("mask_background")
        mask = masking.severity if masking else 0.0
        images, depths, segs = {}, {}, {}
        for cam in self.camera_names:
            rgb, dep, seg = self.scene.render(
                cam, depth=self.depth, segmentation=self.segmentation or mask > 0
            )
            if mask > 0:
                rgb = perturb.apply_mask(rgb, seg, mask)
            if self._noise is not None:
                rgb = self._noise.apply(rgb, self._noise_rng)
            images[cam] = rgb
            if self.depth:
                depths[cam] = dep
            if self.segmentation:
                segs[cam] = seg
        obs: dict[str, Any] = {"images": images, "state": self.scene.state(), "instruction": self.instruction}
        if self.depth:
            obs["depth"] = depths
        if self.segmentation:
            obs["segmentation"] = segs
        obs.update(self._prompt)
        return obs


_CHARSET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;:?!'-_")
