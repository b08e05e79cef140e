"""Observations for the server tests, in the env layout of ``vlaworks/envs/base.py``."""

from __future__ import annotations

import numpy as np

CAMERAS = ("base", "wrist")
STATE_DIM = 7


def observation(seed: int, size: int = 40) -> dict:
    """A random observation for the served checkpoint, plus a camera the policy does not read."""
    rng = np.random.default_rng(seed)
    return {
        "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in (*CAMERAS, "side")},
        "instruction": f"pick up cube {seed}",
        "state": rng.uniform(-1, 1, STATE_DIM).astype(np.float32),
    }
