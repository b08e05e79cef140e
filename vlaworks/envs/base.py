"""The one interface evaluation and serving speak to: a gymnasium ``Env``.

Every adapter (built-in tabletop world, Meta-World, LIBERO) returns observations of this
shape, so rollouts, policies and the server never import a simulator:

``observation`` (a ``dict``)::

    {"images": {"base": uint8[H, W, 3], "wrist": uint8[H, W, 3], ...},
     "state": float32[STATE_DIM],      # end-effector xyz, roll/pitch/yaw, gripper opening
     "instruction": str}

Each adapter names its cameras and lays out its state as the datasets of its benchmark do,
so a policy trained on them reads the env unchanged: the tabletop world ``base`` / ``wrist``
and a 7-D state as above; LIBERO ``image`` / ``wrist_image`` and an 8-D state (eef xyz,
eef axis-angle, the two finger joints), as in the LeRobot LIBERO datasets.

``action``: float32[7] = (dx, dy, dz, droll, dpitch, dyaw, gripper), each in [-1, 1];
gripper -1 opens and +1 closes (LIBERO's convention). ``info`` holds at least
``"success": bool`` and ``"task": str`` (the task id, e.g. ``"spatial/pick_leftmost"``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

ACTION_DIM = 7
GRIPPER_INDEX = 6


class EnvAdapter(Protocol):
    """What the evaluator needs of an environment beyond ``gymnasium.Env``."""

    camera_names: tuple[str, ...]
    max_episode_steps: int

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]: ...

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict[str, Any]]: ...

    def close(self) -> None: ...
