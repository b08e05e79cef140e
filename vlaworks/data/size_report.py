"""Measure dataset size and video fidelity per codec preset on synthetic tabletop-like episodes.

Run ``python -m vlaworks.data.size_report --episodes 20 --length 100 --size 128``: it
writes two-camera episodes (rendered-looking frames: smooth shaded table, a few moving
coloured blocks, mild sensor noise) with each codec preset, then reports MB per 100
episodes, write / read time per episode and PSNR of the decoded frames.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from vlaworks.data.lerobot import DatasetWriter, LeRobotDataset
from vlaworks.data.video import VIDEO_CODECS


def synthetic_frame(t: int, episode: int, camera: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A shaded table with three blocks moving along smooth paths, plus sensor noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.stack([0.55 + 0.2 * yy, 0.45 + 0.15 * yy, 0.35 + 0.1 * xx], axis=-1) * 255
    for block in range(3):
        phase = 0.05 * t + block * 2.1 + episode * 0.7 + camera * 0.3
        cx, cy = 0.5 + 0.3 * np.cos(phase), 0.5 + 0.3 * np.sin(1.3 * phase)
        mask = (np.abs(xx - cx) < 0.07) & (np.abs(yy - cy) < 0.07)
        image[mask] = np.array([[200, 40, 40], [40, 180, 60], [50, 70, 210]][block]) * (
            0.8 + 0.2 * yy[mask, None]
        )
    image += rng.normal(0, 1.5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _features(size: int) -> dict[str, dict]:
    return {
        "observation.images.base": {"dtype": "video", "shape": [size, size, 3]},
        "observation.images.wrist": {"dtype": "video", "shape": [size, size, 3]},
        "observation.state": {"dtype": "float32", "shape": [8]},
        "action": {"dtype": "float32", "shape": [7]},
    }


def measure(codec: str, episodes: int, length: int, size: int, workdir: Path) -> dict[str, float]:
    """Write and read one dataset with ``codec``; returns size and fidelity numbers."""
    rng = np.random.default_rng(0)
    root = workdir / codec
    frames = {
        (e, c): np.stack([synthetic_frame(t, e, c, size, rng) for t in range(length)])
        for e in range(episodes)
        for c in range(2)
    }
    start = time.perf_counter()
    with DatasetWriter(root, fps=10, features=_features(size), video_codec=codec) as writer:
        for e in range(episodes):
            for t in range(length):
                writer.add_frame(
                    {
                        "observation.images.base": frames[e, 0][t],
                        "observation.images.wrist": frames[e, 1][t],
                        "observation.state": rng.normal(size=8).astype(np.float32),
                        "action": rng.uniform(-1, 1, 7).astype(np.float32),
                        "task": "put the red block on the blue block",
                    }
                )
            writer.save_episode()
    write_s = time.perf_counter() - start
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    videos = sum(p.stat().st_size for p in (root / "videos").rglob("*.mp4"))
    start = time.perf_counter()
    ds = LeRobotDataset(root)
    squared_error = []
    for e in range(episodes):
        ep = ds.episode(e)
        for c, key in enumerate(("observation.images.base", "observation.images.wrist")):
            squared_error.append(np.mean((ep[key].astype(np.float64) - frames[e, c]) ** 2))
    read_s = time.perf_counter() - start
    mse = float(np.mean(squared_error))
    return {
        "mb_per_100_episodes": total / 1e6 * 100 / episodes,
        "video_share": videos / total,
        "write_s_per_episode": write_s / episodes,
        "read_s_per_episode": read_s / episodes,
        "psnr_db": float("inf") if mse == 0 else 10 * np.log10(255**2 / mse),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vlaworks-size-"))
    try:
        for codec in VIDEO_CODECS:
            result = measure(codec, args.episodes, args.length, args.size, workdir)
            print(codec, " ".join(f"{k}={v:.3f}" for k, v in result.items()), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
