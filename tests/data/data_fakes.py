"""Synthetic tabletop frames and features shared by the data-layer tests (and their subprocesses)."""

from __future__ import annotations

import numpy as np

SIZE = 32


def tabletop_features(size: int = SIZE) -> dict[str, dict]:
    """The feature set our tabletop datasets use, at a small image size."""
    return {
        "observation.images.base": {"dtype": "video", "shape": [size, size, 3]},
        "observation.images.wrist": {"dtype": "video", "shape": [size, size, 3]},
        "observation.state": {"dtype": "float32", "shape": [8]},
        "action": {"dtype": "float32", "shape": [7]},
        "observation.depth.base": {"dtype": "float32", "shape": [size, size]},
        "observation.segmentation.base": {"dtype": "int32", "shape": [size, size]},
        "observation.camera.base.intrinsics": {"dtype": "float32", "shape": [3, 3]},
        "observation.camera.base.extrinsics": {"dtype": "float32", "shape": [4, 4]},
    }


def smooth_image(t: int, seed: int, size: int = SIZE) -> np.ndarray:
    """A smooth gradient with a moving square, blue level changing per frame: easy to tell frames apart."""
    yy, xx = np.mgrid[0:size, 0:size]
    blue = np.full_like(xx, (30 + 40 * t + 20 * seed) % 220)
    image = np.stack([xx * 255 // size, yy * 255 // size, blue], -1)
    cx, cy = (4 + t + seed) % (size - 8), (6 + 2 * seed) % (size - 8)
    image[cy : cy + 8, cx : cx + 8] = (220, 40 + (23 * t) % 200, 40)
    return image.astype(np.uint8)


def make_frame(t: int, seed: int, rng: np.random.Generator, task: str, size: int = SIZE) -> dict:
    action = rng.uniform(-1, 1, 7).astype(np.float32)
    action[6] = 1.0 if t % 4 < 2 else -1.0
    return {
        "observation.images.base": smooth_image(t, seed, size),
        "observation.images.wrist": smooth_image(t + 3, seed + 1, size),
        "observation.state": rng.normal(size=8).astype(np.float32),
        "action": action,
        "observation.depth.base": rng.uniform(0.2, 2.0, (size, size)).astype(np.float32),
        "observation.segmentation.base": rng.integers(0, 5, (size, size)).astype(np.int32),
        "observation.camera.base.intrinsics": np.eye(3, dtype=np.float32) * (seed + 1),
        "observation.camera.base.extrinsics": np.eye(4, dtype=np.float32),
        "task": task,
    }
