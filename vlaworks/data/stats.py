"""Per-feature statistics in the LeRobotDataset v3 ``meta/stats.json`` format.

Each feature maps to ``{"min", "max", "mean", "std", "q01", "q99", "count"}``, every
value a (nested) list with the feature's per-dimension shape (``count`` is ``[N]``).
Statistics reduce over frames only, so a ``[7]`` action gets ``[7]``-long lists.
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
