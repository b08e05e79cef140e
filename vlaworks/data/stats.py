"""Per-feature statistics in the LeRobotDataset v3 ``meta/stats.json`` format.

Each feature maps to ``{"min", "max", "mean", "std", "q01", "q99", "count"}``, every
value a (nested) list with the feature's per-dimension shape (``count`` is ``[N]``).
Statistics reduce over frames only, so a ``[7]`` action gets ``[7]``-long lists.

Camera streams (uint8 ``[H, W, C]`` frames) get per-channel statistics over every pixel of
every frame, scaled to ``[0, 1]`` and shaped ``[C, 1, 1]`` as LeRobot writes them (its
policies normalise images with them). :class:`ImageStats` keeps one 256-bin histogram per
channel, so they are exact for all frames in constant memory; its quantiles are the
smallest pixel value whose cumulative share reaches q (uint8 values are discrete).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STAT_NAMES = ("min", "max", "mean", "std", "q01", "q99", "count")


def compute_stats(values: np.ndarray) -> dict[str, list]:
    """Statistics of ``values`` (``[N, *shape]``) over the first axis, in float64."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"compute_stats needs at least one frame; got an array of shape {x.shape}.")
    q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
    return {
        "min": x.min(axis=0).tolist(),
        "max": x.max(axis=0).tolist(),
        "mean": x.mean(axis=0).tolist(),
        "std": x.std(axis=0).tolist(),
        "q01": q01.tolist(),
        "q99": q99.tolist(),
        "count": [int(x.shape[0])],
    }


class ImageStats:
    """Running per-channel statistics of uint8 frames ``[N, H, W, C]`` (see the module docstring)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.histogram = np.zeros((channels, 256), dtype=np.int64)
        self.frames = 0

    def add(self, frames: np.ndarray) -> None:
        """Count the pixels of ``frames`` (``[N, H, W, C]`` uint8)."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != self.channels:
            raise ValueError(
                f"ImageStats needs uint8 frames [N, H, W, {self.channels}]; "
                f"got {frames.dtype} {frames.shape}."
            )
        for c in range(self.channels):
            self.histogram[c] += np.bincount(frames[..., c].reshape(-1), minlength=256)
        self.frames += frames.shape[0]

    def stats(self) -> dict[str, list]:
        """The statistics in the ``stats.json`` format, values in [0, 1] shaped ``[C, 1, 1]``."""
        if self.frames == 0:
            raise ValueError("ImageStats has no frames; add some before asking for statistics.")
        values = np.arange(256, dtype=np.float64) / 255.0
        total = self.histogram.sum(axis=1).astype(np.float64)
        mean = self.histogram @ values / total
        var = np.maximum(self.histogram @ values**2 / total - mean**2, 0.0)
        share = np.cumsum(self.histogram, axis=1) / total[:, None]
        seen = self.histogram > 0

        def column(x: np.ndarray) -> list:
            return x.reshape(self.channels, 1, 1).tolist()

        def quantile(q: float) -> np.ndarray:
            return values[np.argmax(share >= q - 1e-12, axis=1)]

        return {
            "min": column(values[np.argmax(seen, axis=1)]),
            "max": column(values[255 - np.argmax(seen[:, ::-1], axis=1)]),
            "mean": column(mean),
            "std": column(np.sqrt(var)),
            "q01": column(quantile(0.01)),
            "q99": column(quantile(0.99)),
            "count": [self.frames],
        }


def compute_dataset_stats(columns: dict[str, np.ndarray]) -> dict[str, dict[str, list]]:
    """Statistics for every column of ``{feature: [N, *shape] array}``."""
    return {key: compute_stats(value) for key, value in columns.items()}


def write_stats(stats: dict[str, dict[str, list]], path: Path) -> None:
    """Write ``stats`` as indented JSON (the v3 ``meta/stats.json`` file)."""
    Path(path).write_text(json.dumps(stats, indent=2))


def read_stats(path: Path) -> dict[str, dict[str, list]]:
    """Read a ``meta/stats.json`` file; a missing file gives ``{}`` (stats are optional in v3)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        stats = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); recompute it from the data.") from err
    if not isinstance(stats, dict):
        raise ValueError(f"{path} must hold a JSON object of per-feature statistics.")
    return stats
