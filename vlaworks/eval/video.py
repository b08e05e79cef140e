"""Rollout videos: camera views side by side, written as H.264 mp4 (PyAV) or GIF (Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def tile_views(images: dict[str, np.ndarray], camera_names: Sequence[str]) -> np.ndarray:
    """Concatenate the ``camera_names`` views of one observation left to right (uint8 HxWx3).

    Views of different heights are bottom-padded with black to the tallest one.
    """
    missing = [c for c in camera_names if c not in images]
    if missing:
        raise KeyError(f"Observation has no image for camera(s) {missing}; it has {sorted(images)}.")
    views = [np.asarray(images[c], dtype=np.uint8) for c in camera_names]
    height = max(v.shape[0] for v in views)
    padded = [np.pad(v, ((0, height - v.shape[0]), (0, 0), (0, 0))) for v in views]
    return np.concatenate(padded, axis=1)


def write_video(frames: Sequence[np.ndarray], path: Path, fps: int = 20) -> Path:
    """Write uint8 ``[H, W, 3]`` frames to ``path`` (``.mp4`` via PyAV/H.264, ``.gif`` via Pillow)."""
    if not frames:
        raise ValueError(f"No frames to write to {path}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return path
    if suffix != ".mp4":
        raise ValueError(f"Video path must end in .mp4 or .gif; got {path.name}.")
    import av

    h, w = frames[0].shape[:2]
    # yuv420p needs even sides.
    ph, pw = h + h % 2, w + w % 2
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            arr = np.pad(np.asarray(frame, dtype=np.uint8), ((0, ph - h), (0, pw - w), (0, 0)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
