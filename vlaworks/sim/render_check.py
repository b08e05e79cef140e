"""A picture of one scene for eyeballing: base + wrist RGB, depth and segmentation side by side."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vlaworks.envs.tabletop import TabletopEnv


def _colorize_depth(depth: np.ndarray) -> np.ndarray:
    """Inverse depth (near = bright), stretched between the 1st and 90th percentile of the view."""
    inv = 1.0 / np.maximum(depth, 1e-3)
    lo, hi = np.percentile(inv, [10, 99])
    norm = np.clip((inv - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return np.repeat((norm * 255).astype(np.uint8)[..., None], 3, axis=2)


def _colorize_segmentation(seg: np.ndarray) -> np.ndarray:
    """A fixed random colour per id; background black."""
    palette = np.random.default_rng(3).integers(40, 256, size=(int(seg.max()) + 1, 3)).astype(np.uint8)
    palette[0] = 0
    return palette[seg]


def render_check(out: Path, suite: str, seed: int, image_size: int, perturb: list[str]) -> Path:
    """Write a PNG with, per camera, RGB | depth | segmentation, and the instruction as a caption."""
    env = TabletopEnv(
        suite, image_size=image_size, perturbations=list(perturb), depth=True, segmentation=True
    )
    try:
        obs, info = env.reset(seed=seed)
    finally:
        env.close()
    rows = [
        np.concatenate(
            [
                obs["images"][cam],
                _colorize_depth(obs["depth"][cam]),
                _colorize_segmentation(obs["segmentation"][cam]),
            ],
            axis=1,
        )
        for cam in env.camera_names
    ]
    grid = np.concatenate(rows, axis=0)
    lines = textwrap.wrap(f"{info['task']}: {obs['instruction']}", width=max(grid.shape[1] // 6, 10))
    caption_h = 4 + 12 * len(lines)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + caption_h), "white")
    canvas.paste(Image.fromarray(grid), (0, caption_h))
    ImageDraw.Draw(canvas).multiline_text((4, 2), "\n".join(lines), fill="black", spacing=2)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
