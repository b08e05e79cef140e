"""A fast integrity pass over a LeRobotDataset folder: ``vlaworks check DATA``, and the pass
``train`` runs before it builds a model.

A dataset can open fine and still fail hours into training, when the sampler first reaches
a truncated video or a NaN action. This pass reads the metadata, the numeric columns and
the video packet headers (no pixel is decoded) and reports every problem with its file,
its episodes and the fix:

* ``info.json``, ``stats.json``, ``tasks.parquet`` and the episode metadata parse, and every
  data and video file exists (opening :class:`~vlaworks.data.lerobot.LeRobotDataset`);
* each episode has as many rows in its data file as its metadata length;
* each video file holds, for every episode in it, as many frames as the episode is long;
* the statistics of numeric vectors (actions, state) exist, have the feature's
  dimension, are finite and ordered (min <= max, q01 <= q99, std >= 0), and spread
  (std > 0) wherever the values vary; a dimension whose min equals its max is constant,
  which is fine (the normaliser centres it) and listed as a note;
* actions and state are finite in every frame.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vlaworks.data import layout
from vlaworks.data.lerobot import DatasetError, LeRobotDataset, stats_keys
from vlaworks.data.stats import compute_stats, write_stats
from vlaworks.data.video import packet_times

REQUIRED_STATS = ("action",)
REGENERATE = "regenerate the dataset (vlaworks generate ... --overwrite) or restore the file from its source"


def _recompute(root: Path) -> str:
    return f"recompute them from the data with `vlaworks check {root} --recompute-stats`"


@dataclass(frozen=True)
class Problem:
    """One integrity failure: the file, what is wrong, the episodes it affects and the fix."""

    file: Path
    what: str
    fix: str
    episodes: tuple[int, ...] = ()

    def __str__(self) -> str:
        where = ""
        if self.episodes:
            shown = ", ".join(map(str, self.episodes[:8])) + (", ..." if len(self.episodes) > 8 else "")
            where = f" (episode{'s' if len(self.episodes) > 1 else ''} {shown})"
        return f"{self.file}{where}: {self.what}; {self.fix}."


@dataclass
class CheckReport:
    """What :func:`check_dataset` found; ``notes`` are facts worth knowing that are not errors."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    episodes: int = 0
    frames: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise a one-line :class:`DatasetError` naming the first problem (and how many more)."""
        if self.ok:
            return
        more = len(self.problems) - 1
        tail = f" ({more} more: run `vlaworks check {self.root}` to list them)" if more else ""
        raise DatasetError(f"Dataset {self.root} fails the integrity check: {self.problems[0]}{tail}")


def check_dataset(root: Path) -> CheckReport:
    """Run the integrity pass described in the module docstring over the dataset at ``root``.

    A folder that does not even open as a dataset raises its :class:`DatasetError` (which
    names the file and the fix); everything after that is collected in the report."""
    report = CheckReport(Path(root))
    ds = LeRobotDataset(report.root)
    report.episodes, report.frames = ds.num_episodes, ds.num_frames
    keys = [k for k in stats_keys(ds.features) if k in ("action", "observation.state")]
    _check_stats(ds, keys, report)
    _check_rows(ds, keys, report)
    for key in ds.video_keys:
        _check_video(ds, key, report)
    return report


def _check_stats(ds: LeRobotDataset, keys: Sequence[str], report: CheckReport) -> None:
    path, fix = ds.root / layout.STATS_PATH, _recompute(ds.root)
    for key in keys:
        entry = ds.stats.get(key)
        if entry is None:
            if key in REQUIRED_STATS:
                report.problems.append(
                    Problem(path, f"no statistics for {key!r} (the normaliser needs them)", fix)
                )
            continue
        dim = int(np.prod(ds.features[key]["shape"]))
        values: dict[str, np.ndarray] = {}
        for name in ("min", "max", "mean", "std", "q01", "q99"):
            if name not in entry:
                continue
            try:
                value = np.asarray(entry[name], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                report.problems.append(Problem(path, f"{key!r} {name} is not a list of numbers", fix))
                continue
            if value.size != dim:
                report.problems.append(
                    Problem(path, f"{key!r} {name} has {value.size} values but the feature has {dim}", fix)
                )
            elif not np.isfinite(value).all():
                dims = np.flatnonzero(~np.isfinite(value)).tolist()
                report.problems.append(Problem(path, f"{key!r} {name} is NaN or inf at dims {dims}", fix))
            else:
                values[name] = value
        for lo, hi in (("min", "max"), ("q01", "q99")):
            if lo in values and hi in values and (values[lo] > values[hi]).any():
                dims = np.flatnonzero(values[lo] > values[hi]).tolist()
                report.problems.append(Problem(path, f"{key!r} {lo} exceeds {hi} at dims {dims}", fix))
        constant = np.zeros(dim, dtype=bool)
        if "min" in values and "max" in values:
            constant = values["min"] == values["max"]
        if "std" in values:
            flat = (values["std"] <= 0) & ~constant
            if flat.any():
                dims = np.flatnonzero(flat).tolist()
                report.problems.append(
                    Problem(path, f"{key!r} std is <= 0 at dims {dims} although the values vary there", fix)
                )
        if constant.any():
            dims = np.flatnonzero(constant).tolist()
            report.notes.append(f"{key!r} is constant at dims {dims} (the normaliser only centres it)")
        missing = [n for n in ("q01", "q99", "mean", "std", "min", "max") if n not in entry]
        if missing:
            report.notes.append(f"statistics of {key!r} lack {missing}; {fix} if a normaliser needs them")


def _check_rows(ds: LeRobotDataset, keys: Sequence[str], report: CheckReport) -> None:
    """Per-episode row counts and finite actions / state, one data file at a time."""
    by_file: dict[Path, list[dict]] = defaultdict(list)
    for ep in ds.episodes:
        by_file[ds.data_path(ep)].append(ep)
    for path, episodes in sorted(by_file.items()):
        try:
            table = pq.read_table(path, columns=["episode_index", *keys])
        except (pa.ArrowException, OSError, KeyError) as err:
            ids = tuple(int(ep["episode_index"]) for ep in episodes)
            report.problems.append(Problem(path, f"cannot be read ({err})", REGENERATE, ids))
            continue
        index = table.column("episode_index").to_numpy()
        found = dict(zip(*np.unique(index, return_counts=True), strict=True))
        short = [ep for ep in episodes if found.get(int(ep["episode_index"]), 0) != int(ep["length"])]
        if short:
            ep = short[0]
            report.problems.append(Problem(
                path,
                f"holds {found.get(int(ep['episode_index']), 0)} rows for episode {ep['episode_index']} "
                f"whose metadata length is {ep['length']}",
                REGENERATE,
                tuple(int(e["episode_index"]) for e in short),
            ))
        for key in keys:
            values = layout.from_arrow(table.column(key), layout.feature_shape(ds.features[key]))
            bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            if bad.any():
                ids = tuple(int(e) for e in np.unique(index[bad]))
                report.problems.append(Problem(
                    path, f"{key!r} is NaN or inf in {int(bad.sum())} frame(s)",
                    "drop those episodes or fix the source data, then regenerate the dataset", ids,
                ))


def _check_video(ds: LeRobotDataset, key: str, report: CheckReport) -> None:
    """Every episode's span of its mp4 must hold as many frames as the episode is long."""
    by_file: dict[Path, list[dict]] = defaultdict(list)
    for ep in ds.episodes:
        by_file[ds.video_path(ep, key)].append(ep)
    half = 0.5 / float(ds.fps)
    for path, episodes in sorted(by_file.items()):
        ids = tuple(int(ep["episode_index"]) for ep in episodes)
        try:
            times = packet_times(path)
        except ValueError as err:
            reason = getattr(err.__cause__, "strerror", None) or str(err)
            what = f"cannot be read: truncated or corrupt ({reason})"
            report.problems.append(Problem(path, what, REGENERATE, ids))
            continue
        wrong: list[tuple[int, int, int]] = []
        for ep in episodes:
            start = float(ep.get(f"videos/{key}/from_timestamp", 0.0))
            length = int(ep["length"])
            end = start + length / float(ds.fps)
            count = int(((times >= start - half) & (times < end - half)).sum())
            if count != length:
                wrong.append((int(ep["episode_index"]), count, length))
        if wrong:
            episode, count, length = wrong[0]
            report.problems.append(Problem(
                path, f"holds {count} frames for episode {episode} of length {length} (truncated or "
                "mismatched video)", REGENERATE, tuple(w[0] for w in wrong),
            ))


def recompute_stats(root: Path) -> Path:
    """Rewrite ``meta/stats.json`` of the dataset at ``root`` from its data files (numeric
    vector features; other entries are kept). Reads ``info.json`` and the data files
    directly, so it works when the old ``stats.json`` does not even parse."""
    root = Path(root)
    info_path = root / layout.INFO_PATH
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(
            f"Cannot read {info_path} ({err}); statistics are recomputed only for a dataset folder."
        ) from err
    keys = stats_keys(info.get("features", {}))
    files = sorted((root / "data").rglob("*.parquet"))
    if not keys or not files:
        raise DatasetError(
            f"{root} has no numeric vector features or no data files to compute statistics from."
        )
    columns: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for path in files:
        table = pq.read_table(path, columns=keys)
        for key in keys:
            shape = layout.feature_shape(info["features"][key])
            columns[key].append(layout.from_arrow(table.column(key), shape))
    stats_path = root / layout.STATS_PATH
    try:
        old = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    except json.JSONDecodeError:
        old = {}
    stats = dict(old) if isinstance(old, dict) else {}
    stats.update({k: compute_stats(np.concatenate(v)) for k, v in columns.items()})
    tmp = stats_path.with_suffix(".json.tmp")
    write_stats(stats, tmp)
    os.replace(tmp, stats_path)
    return stats_path
