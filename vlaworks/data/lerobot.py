"""Episode storage in the LeRobotDataset v3 layout: :class:`DatasetWriter` and :class:`LeRobotDataset`.

The writer produces datasets that LeRobot's own tooling reads, and the reader loads
datasets published in v3 (LIBERO, Bridge, Fractal conversions) as well as ours. Our
datasets may add lossless per-frame arrays (depth ``float32 [H, W]``, segmentation
``int32 [H, W]``, camera intrinsics ``[3, 3]`` / extrinsics ``[4, 4]``) as ordinary
numeric features; they live in the data parquet like any other column.

Writes are atomic: everything goes into a hidden sibling folder
``.<name>.writing-<pid>`` and only a clean exit renames it to ``root``; ``meta/info.json``
is written last, so an interrupted write never leaves a folder that reads as a dataset.
Overwriting replaces only what a writer made: ``root`` must be absent, empty or a dataset
folder holding nothing but dataset entries; the old dataset is renamed to
``.<name>.replaced-<pid>`` and deleted only after the new one is in place. Leftovers of
killed writers anywhere in the parent folder are cleaned up (a half-replaced dataset is
restored) by the next writer and logged.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from vlaworks.data import layout
from vlaworks.data.stats import ImageStats, compute_dataset_stats, compute_stats, read_stats, write_stats
from vlaworks.data.video import VideoFileEncoder, decode_span, get_codec


class DatasetError(ValueError):
    """A dataset on disk is missing, incomplete or inconsistent."""


log = logging.getLogger(__name__)

#: top-level entries of a LeRobotDataset folder (ours, or one downloaded from the Hub)
DATASET_ENTRIES = frozenset({"data", "meta", "videos", "images", "README.md", ".gitattributes"})


def _entries(path: Path, limit: int = 5) -> str:
    """``a/, b.txt, ...``: what a folder holds, for error messages."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_replaceable(root: Path, overwrite: bool) -> None:
    """Raise ``FileExistsError`` unless writing a dataset to ``root`` loses nothing.

    ``root`` may be absent or an empty folder; with ``overwrite`` it may also be a dataset
    folder (``meta/info.json`` present) holding only :data:`DATASET_ENTRIES`. Anything
    else is refused with a message naming what is there.
    """
    root = Path(root)
    if not root.exists() and not root.is_symlink():
        return
    if not root.is_dir() or root.is_symlink():
        raise FileExistsError(f"{root} exists and is not a folder; choose another output path.")
    if not any(root.iterdir()):
        return
    if not (root / layout.INFO_PATH).is_file():
        raise FileExistsError(
            f"{root} is not a dataset folder (it holds {_entries(root)}); --overwrite only replaces a "
            "dataset or an empty folder. Choose another --out or move those files away."
        )
    foreign = sorted(p.name for p in root.iterdir() if p.name not in DATASET_ENTRIES)
    if foreign:
        raise FileExistsError(
            f"{root} holds a dataset plus entries vlaworks did not write ({', '.join(foreign)}); replacing "
            "it would delete them. Move them out of the folder or choose another --out."
        )
    if not overwrite:
        raise FileExistsError(
            f"{root} already holds a dataset; rerun with --overwrite (overwrite=True in Python) to replace "
            "it, or choose another --out."
        )


RESERVED_KEYS = ("task", *layout.DEFAULT_FEATURES)


def _validate_features(features: dict[str, dict]) -> dict[str, dict]:
    """Check and complete user features (names default to ``None``; images are ``[H, W, 3]``)."""
    if not features:
        raise ValueError(
            "DatasetWriter needs at least one feature, e.g. {'action': {'dtype': 'float32', ...}}."
        )
    out: dict[str, dict] = {}
    for key, ft in features.items():
        if key in RESERVED_KEYS:
            raise ValueError(f"Feature name {key!r} is reserved (the writer fills {list(RESERVED_KEYS)}).")
        if "/" in key:
            raise ValueError(
                f"Feature name {key!r} must not contain '/' (it is used in episode metadata columns)."
            )
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            raise ValueError(f"Feature {key!r} must be a dict with 'dtype' and 'shape'; got {ft!r}.")
        dtype, shape = ft["dtype"], [int(d) for d in ft["shape"]]
        if dtype in layout.VISUAL_DTYPES:
            if len(shape) != 3 or shape[2] != 3:
                raise ValueError(
                    f"Feature {key!r} ({dtype}) must have shape [H, W, 3] (channels last); got {shape}."
                )
            names = ft.get("names") or ["height", "width", "channels"]
        elif dtype in layout.NUMERIC_DTYPES:
            names = ft.get("names")
        else:
            raise ValueError(
                f"Feature {key!r} has dtype {dtype!r}; use one of "
                f"{list(layout.VISUAL_DTYPES + layout.NUMERIC_DTYPES)}."
            )
        out[key] = {**ft, "dtype": dtype, "shape": shape, "names": names}
    return out


def stats_keys(features: dict[str, dict]) -> list[str]:
    """Features that get statistics: numeric scalars and vectors (actions, state, rewards)."""
    return [k for k, ft in features.items() if layout.is_numeric(ft) and len(ft["shape"]) == 1]


def _encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class DatasetWriter:
    """Writes episodes to a LeRobotDataset v3 folder; use as a context manager.

    ``features`` follows ``info.json``: ``{key: {"dtype", "shape", "names"}}``; dtype
    ``"video"`` streams are mp4-encoded (``video_codec``: ``"h264"`` or ``"lossless"``),
    ``"image"`` streams become PNG bytes in the data parquet, numeric features are
    stored exactly. Statistics of numeric vectors are computed when the writer closes.
    """

    def __init__(
        self,
        root: Path,
        fps: int,
        features: dict[str, dict],
        robot_type: str = "vlaworks-tabletop",
        overwrite: bool = False,
        *,
        video_codec: str = "h264",
        data_file_mb: float = 100.0,
        video_file_mb: float = 500.0,
    ) -> None:
        self.root = Path(root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_writes(self.root.parent)  # first: it may restore a dataset at root
        check_replaceable(self.root, overwrite)
        if fps <= 0:
            raise ValueError(f"fps must be positive; got {fps}.")
        self.fps = int(fps)
        self.features = _validate_features(features)
        self.robot_type = robot_type
        self.overwrite = overwrite
        self.codec_name = video_codec
        self.codec = get_codec(video_codec)
        self.data_file_mb = float(data_file_mb)
        self.video_file_mb = float(video_file_mb)
        self.video_keys = [k for k, ft in self.features.items() if ft["dtype"] == "video"]
        self.image_keys = [k for k, ft in self.features.items() if ft["dtype"] == "image"]
        self.numeric_keys = [k for k, ft in self.features.items() if layout.is_numeric(ft)]

        self.tmp = writing_folder(self.root)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()

        self._buffer: dict[str, list[np.ndarray]] = {k: [] for k in self.features}
        self._frame_tasks: list[str] = []
        self._tasks: dict[str, int] = {}
        self._episodes: list[dict[str, Any]] = []
        self._stat_values: dict[str, list[np.ndarray]] = {k: [] for k in stats_keys(self.features)}
        self._image_stats = {
            k: ImageStats(self.features[k]["shape"][-1])
            for k in (*self.video_keys, *self.image_keys)
            if len(self.features[k]["shape"]) == 3
        }
        self._total_frames = 0
        self._data_file = (0, 0)
        self._data_writer: pq.ParquetWriter | None = None
        self._video_files: dict[str, tuple[int, int]] = {k: (0, 0) for k in self.video_keys}
        self._encoders: dict[str, VideoFileEncoder] = {}
        self._closed = False

    # -- frames and episodes -------------------------------------------------------------

    def add_frame(self, frame: dict[str, Any]) -> None:
        """Buffer one frame: every feature plus ``"task"`` (the instruction string)."""
        if self._closed:
            raise RuntimeError("DatasetWriter is closed; open a new writer to add frames.")
        missing = [k for k in (*self.features, "task") if k not in frame]
        unknown = [k for k in frame if k not in self.features and k != "task"]
        if missing or unknown:
            raise ValueError(
                f"add_frame: missing keys {missing}, unknown keys {unknown}; the writer's features are "
                f"{list(self.features)} plus 'task'."
            )
        task = frame["task"]
        if not isinstance(task, str) or not task:
            raise ValueError(f"add_frame: 'task' must be a non-empty instruction string; got {task!r}.")
        checked = {key: self._check(key, ft, frame[key]) for key, ft in self.features.items()}
        for key, value in checked.items():
            self._buffer[key].append(value)
        self._frame_tasks.append(task)

    def _check(self, key: str, ft: dict, value: Any) -> np.ndarray:
        shape = tuple(ft["shape"])
        array = np.asarray(value)
        if ft["dtype"] in layout.VISUAL_DTYPES:
            if array.dtype != np.uint8 or array.shape != shape:
                raise ValueError(
                    f"add_frame: {key!r} must be uint8 {list(shape)} (H, W, RGB); got {array.dtype} "
                    f"{list(array.shape)}."
                )
            return array
        target = np.dtype(ft["dtype"])
        if shape == (1,) and array.shape == ():
            array = array.reshape(1)
        if array.shape != shape:
            raise ValueError(f"add_frame: {key!r} must have shape {list(shape)}; got {list(array.shape)}.")
        if not np.can_cast(array.dtype, target, casting="same_kind"):
            raise ValueError(f"add_frame: {key!r} is {array.dtype}, which does not cast safely to {target}.")
        array = array.astype(target, copy=True)
        if target.kind == "f":
            bad = ~np.isfinite(array) if key == "action" else np.isnan(array)
            if bad.any():
                raise ValueError(
                    f"add_frame: {key!r} has {int(bad.sum())} NaN{' or inf' if key == 'action' else ''} "
                    f"value(s) at flat positions {np.flatnonzero(bad)[:5].tolist()}; fix the source data."
                )
        return array

    @property
    def num_buffered_frames(self) -> int:
        return len(self._frame_tasks)

    def clear_episode(self) -> None:
        """Drop the frames buffered since the last :meth:`save_episode` (e.g. a failed demo)."""
        for values in self._buffer.values():
            values.clear()
        self._frame_tasks.clear()

    def save_episode(self) -> int:
        """Write the buffered frames as one episode; returns its episode index."""
        length = self.num_buffered_frames
        if length == 0:
            raise ValueError("save_episode: no frames buffered; call add_frame first.")
        episode_index = len(self._episodes)
        start = self._total_frames
        for task in self._frame_tasks:
            self._tasks.setdefault(task, len(self._tasks))
        task_index = np.array([self._tasks[t] for t in self._frame_tasks], dtype=np.int64)
        columns: dict[str, pa.Array] = {
            "index": pa.array(np.arange(start, start + length, dtype=np.int64)),
            "episode_index": pa.array(np.full(length, episode_index, dtype=np.int64)),
            "frame_index": pa.array(np.arange(length, dtype=np.int64)),
            "timestamp": pa.array((np.arange(length) / self.fps).astype(np.float32)),
            "task_index": pa.array(task_index),
        }
        for key in self.numeric_keys:
            values = np.stack(self._buffer[key])
            columns[key] = layout.to_arrow(self.features[key], values)
            if key in self._stat_values:
                self._stat_values[key].append(values.reshape(length, -1).astype(np.float64))
        # each video's frames are stacked once, for its stats and its encoder
        frames = {key: np.stack(self._buffer[key]) for key in self.video_keys}
        for key, image_stats in self._image_stats.items():
            image_stats.add(frames[key] if key in frames else np.stack(self._buffer[key]))
        for key in self.image_keys:
            encoded = [{"bytes": _encode_png(im), "path": None} for im in self._buffer[key]]
            columns[key] = pa.array(encoded, layout.arrow_type(self.features[key]))

        row: dict[str, Any] = {
            "episode_index": episode_index,
            "tasks": list(dict.fromkeys(self._frame_tasks)),
            "length": length,
            "data/chunk_index": self._data_file[0],
            "data/file_index": self._data_file[1],
            "dataset_from_index": start,
            "dataset_to_index": start + length,
        }
        self._write_data(pa.table(columns))
        for key in self.video_keys:
            encoder = self._encoder(key)
            chunk, file = self._video_files[key]
            from_ts, to_ts = encoder.add_episode(frames[key])
            row |= {
                f"videos/{key}/chunk_index": chunk,
                f"videos/{key}/file_index": file,
                f"videos/{key}/from_timestamp": from_ts,
                f"videos/{key}/to_timestamp": to_ts,
            }
            if encoder.size_bytes() > self.video_file_mb * 1e6:
                encoder.close()
                del self._encoders[key]
                self._video_files[key] = layout.next_file(chunk, file)
        row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        self._episodes.append(row)
        self._total_frames += length
        self.clear_episode()
        return episode_index

    def _write_data(self, table: pa.Table) -> None:
        path = self.tmp / layout.DATA_PATH.format(
            chunk_index=self._data_file[0], file_index=self._data_file[1]
        )
        if self._data_writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        self._data_writer.write_table(table)
        if path.stat().st_size > self.data_file_mb * 1e6:
            self._data_writer.close()
            self._data_writer = None
            self._data_file = layout.next_file(*self._data_file)

    def _encoder(self, key: str) -> VideoFileEncoder:
        if key not in self._encoders:
            chunk, file = self._video_files[key]
            path = self.tmp / layout.VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            height, width, _ = self.features[key]["shape"]
            self._encoders[key] = VideoFileEncoder(path, self.fps, height, width, self.codec_name)
        return self._encoders[key]

    # -- finalisation ---------------------------------------------------------------------

    def _close_files(self) -> None:
        if self._data_writer is not None:
            self._data_writer.close()
            self._data_writer = None
        for encoder in self._encoders.values():
            encoder.close()
        self._encoders.clear()

    def abort(self) -> None:
        """Discard everything written so far; ``root`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_files()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def finalize(self) -> Path:
        """Write metadata and statistics, then atomically move the dataset to ``root``."""
        if self._closed:
            raise RuntimeError("DatasetWriter is already closed.")
        if self.num_buffered_frames:
            warnings.warn(
                f"DatasetWriter: {self.num_buffered_frames} frames were added but never saved with "
                "save_episode(); they are discarded.",
                stacklevel=2,
            )
        if not self._episodes:
            self.abort()
            raise ValueError(f"DatasetWriter for {self.root}: no episode was saved, so nothing was written.")
        try:
            self._close_files()
            self._write_meta()
            install_dataset(self.tmp, self.root, self.overwrite)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.root

    def _write_meta(self) -> None:
        meta = self.tmp / "meta"
        meta.mkdir(exist_ok=True)
        tasks = sorted(self._tasks, key=self._tasks.__getitem__)
        pq.write_table(layout.tasks_table(tasks), self.tmp / layout.TASKS_PATH)
        episodes_path = self.tmp / layout.EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self._episodes), episodes_path)
        stats = compute_dataset_stats({k: np.concatenate(v) for k, v in self._stat_values.items()})
        stats |= {k: acc.stats() for k, acc in self._image_stats.items() if acc.frames}
        write_stats(stats, self.tmp / layout.STATS_PATH)
        features = {}
        for key, ft in self.features.items():
            features[key] = dict(ft)
            if ft["dtype"] == "video":
                height, width, channels = ft["shape"]
                features[key]["info"] = {
                    "video.height": height,
                    "video.width": width,
                    "video.codec": "h264",
                    "video.pix_fmt": self.codec.pix_fmt,
                    "video.is_depth_map": False,
                    "video.fps": self.fps,
                    "video.channels": channels,
                    "has_audio": False,
                }
        features |= layout.DEFAULT_FEATURES
        info = {
            "codebase_version": layout.CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self._episodes),
            "total_frames": self._total_frames,
            "total_tasks": len(tasks),
            "chunks_size": layout.CHUNKS_SIZE,
            "data_files_size_in_mb": self.data_file_mb,
            "video_files_size_in_mb": self.video_file_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self._episodes)}"},
            "data_path": layout.DATA_PATH,
            "video_path": layout.VIDEO_PATH if self.video_keys else None,
            "features": features,
        }
        # info.json last: its presence is what makes the folder a dataset.
        (self.tmp / layout.INFO_PATH).write_text(json.dumps(info, indent=2))

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()


def writing_folder(root: Path) -> Path:
    """The hidden sibling ``.<name>.writing-<pid>`` a dataset for ``root`` is built in."""
    return root.parent / f".{root.name}.writing-{os.getpid()}"


def install_dataset(tmp: Path, root: Path, overwrite: bool) -> None:
    """Move the finished dataset folder ``tmp`` (a :func:`writing_folder`) to ``root``.

    The check of :func:`check_replaceable` runs again (the folder may have changed while
    the dataset was built); an old dataset is renamed aside and deleted only after the
    new one is in place.
    """
    check_replaceable(root, overwrite)
    old = None
    if root.is_dir() and any(root.iterdir()):
        old = root.parent / f".{root.name}.replaced-{os.getpid()}"
        os.rename(root, old)
    elif root.is_dir():
        root.rmdir()
    # A kill between these renames leaves the old dataset in ``old``; the next writer restores it.
    os.rename(tmp, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_stale_writes(parent: Path) -> list[Path]:
    """Clean up after writers in ``parent`` that were killed; returns the paths dealt with.

    ``.<name>.writing-<pid>`` folders of dead processes are deleted. A
    ``.<name>.replaced-<pid>`` folder (an old dataset an overwrite was replacing) is
    deleted when ``<name>`` exists (the new dataset was installed) and renamed back to
    ``<name>`` otherwise (the overwrite died between its two renames). Each is logged.
    """
    handled: list[Path] = []
    for path in sorted(Path(parent).glob(".*.*-*")):
        stem, _, pid = path.name.rpartition("-")
        name, dot, kind = stem[1:].rpartition(".")
        if not (dot and kind in ("writing", "replaced") and pid.isdigit() and path.is_dir()):
            continue
        if int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        target = path.parent / name
        if kind == "replaced" and not target.exists():
            os.rename(path, target)
            log.warning("restored dataset %s, which a killed overwrite (pid %s) had moved aside", target, pid)
        else:
            shutil.rmtree(path, ignore_errors=True)
            what = "partial dataset" if kind == "writing" else "replaced old dataset"
            log.warning("removed %s %s left by a killed writer (pid %s)", what, path, pid)
        handled.append(path)
    return handled


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------


def _read_parquet(path: Path, **kwargs: Any) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"Dataset file {path} is missing; the dataset is incomplete.")
    try:
        return pq.read_table(path, **kwargs)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"Could not parse parquet file {path}: {err}. The file is corrupt.") from err


class LeRobotDataset:
    """Reads a LeRobotDataset v3 folder; decoded episodes are kept in an LRU cache.

    ``episode(i)`` returns every column of episode ``i`` as arrays (video and image
    features decoded to ``uint8 [T, H, W, 3]``) plus ``"task"`` (the instruction of its
    first frame). ``dataset[g]`` returns the single frame with global index ``g``.
    """

    def __init__(self, root: Path, cache_mb: float = 2048.0) -> None:
        self.root = Path(root)
        info_path = self.root / layout.INFO_PATH
        if not self.root.is_dir():
            raise DatasetError(
                f"No dataset at {self.root}: the folder does not exist. Pass the folder that holds "
                f"{layout.INFO_PATH}, or make one with `vlaworks generate --out {self.root}`."
            )
        if not info_path.is_file():
            raise DatasetError(
                f"No LeRobotDataset at {self.root}: {layout.INFO_PATH} is missing (an interrupted write "
                "leaves only a hidden '.<name>.writing-<pid>' folder, never a readable dataset)."
            )
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{info_path} is not valid JSON: {err}.") from err
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise DatasetError(
                f"{self.root} is LeRobotDataset {version or 'of unknown version'}; only v3.x is supported. "
                "Convert it with LeRobot's convert_dataset_v21_to_v30 script."
            )
        missing = [
            k
            for k in ("fps", "features", "total_episodes", "total_frames", "data_path")
            if k not in self.info
        ]
        if missing:
            raise DatasetError(f"{info_path} lacks required keys {missing}.")
        try:
            self.stats = read_stats(self.root / layout.STATS_PATH)
            self.tasks: dict[int, str] = layout.tasks_from_table(_read_parquet(self.root / layout.TASKS_PATH))
        except ValueError as err:
            raise DatasetError(str(err)) from err
        self.episodes = self._load_episodes()
        self._by_index = {int(ep["episode_index"]): pos for pos, ep in enumerate(self.episodes)}
        self._starts = np.array([ep["dataset_from_index"] for ep in self.episodes], dtype=np.int64)
        self._check_consistency()
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._cache_bytes = 0
        self.cache_bytes_limit = int(cache_mb * 1e6)

    # -- metadata --------------------------------------------------------------------------

    def _load_episodes(self) -> list[dict[str, Any]]:
        files = sorted((self.root / layout.EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        if not files:
            raise DatasetError(f"{self.root / layout.EPISODES_DIR} holds no episode parquet files.")
        rows: list[dict[str, Any]] = []
        for path in files:
            try:
                names = pq.read_schema(path).names
            except (pa.ArrowException, OSError) as err:
                raise DatasetError(
                    f"Could not parse parquet file {path}: {err}. The file is corrupt."
                ) from err
            columns = [n for n in names if not n.startswith("stats/")]
            rows.extend(_read_parquet(path, columns=columns).to_pylist())
        required = (
            "episode_index",
            "length",
            "dataset_from_index",
            "dataset_to_index",
            "data/chunk_index",
            "data/file_index",
        )
        missing = [k for k in required if k not in rows[0]]
        if missing:
            raise DatasetError(
                f"Episode metadata in {self.root / layout.EPISODES_DIR} lacks columns {missing}."
            )
        return sorted(rows, key=lambda r: r["dataset_from_index"])

    def _check_consistency(self) -> None:
        if len(self.episodes) != self.info["total_episodes"]:
            raise DatasetError(
                f"{self.root}: info.json says {self.info['total_episodes']} episodes but the episode "
                f"metadata lists {len(self.episodes)}."
            )
        lengths = sum(int(ep["length"]) for ep in self.episodes)
        if lengths != self.info["total_frames"]:
            raise DatasetError(
                f"{self.root}: info.json says {self.info['total_frames']} frames but episode lengths sum "
                f"to {lengths}."
            )
        data_rows = 0
        for path in sorted({self.data_path(ep) for ep in self.episodes}):
            if not path.is_file():
                raise DatasetError(f"Data file {path} is missing; the dataset is incomplete.")
            try:
                data_rows += pq.ParquetFile(path).metadata.num_rows
            except (pa.ArrowException, OSError) as err:
                raise DatasetError(
                    f"Could not parse parquet file {path}: {err}. The file is corrupt."
                ) from err
        if data_rows != self.info["total_frames"]:
            raise DatasetError(
                f"{self.root}: frame count mismatch: the metadata says {self.info['total_frames']} frames "
                f"but the data files hold {data_rows} rows."
            )
        for key in self.video_keys:
            for path in sorted({self.video_path(ep, key) for ep in self.episodes}):
                if not path.is_file():
                    raise DatasetError(
                        f"Video file {path} for {key!r} is missing; the dataset is incomplete."
                    )

    def data_path(self, ep: dict[str, Any]) -> Path:
        """The data parquet file holding episode ``ep`` (a row of :attr:`episodes`)."""
        rel = self.info["data_path"].format(
            chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"]
        )
        return self.root / rel

    def video_path(self, ep: dict[str, Any], key: str) -> Path:
        """The mp4 file holding video feature ``key`` of episode ``ep``."""
        template = self.info.get("video_path")
        if not template:
            raise DatasetError(f"{self.root}: info.json has video features but no 'video_path' template.")
        col = f"videos/{key}/chunk_index"
        if col not in ep:
            raise DatasetError(f"Episode metadata has no {col!r} column for video feature {key!r}.")
        return self.root / template.format(
            video_key=key, chunk_index=ep[col], file_index=ep[f"videos/{key}/file_index"]
        )

    @property
    def features(self) -> dict[str, dict]:
        return self.info["features"]

    @property
    def fps(self) -> float:
        return self.info["fps"]

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        """Full keys of camera streams (video or image), e.g. ``observation.images.base``."""
        return [k for k, ft in self.features.items() if ft["dtype"] in layout.VISUAL_DTYPES]

    @property
    def camera_names(self) -> list[str]:
        """Short camera names: the camera keys without the ``observation.images.`` prefix."""
        return [k.removeprefix(layout.IMAGE_PREFIX) for k in self.camera_keys]

    def camera_key(self, camera: str) -> str:
        """Full key for a camera given by short name or full key; names the available ones if absent."""
        for key in (camera, layout.IMAGE_PREFIX + camera):
            if key in self.camera_keys:
                return key
        raise KeyError(
            f"Camera {camera!r} is not in dataset {self.root}; available cameras: {self.camera_names} "
            f"(keys {self.camera_keys})."
        )

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(episode_index, length)`` arrays in storage order."""
        idx = np.array([ep["episode_index"] for ep in self.episodes], dtype=np.int64)
        lengths = np.array([ep["length"] for ep in self.episodes], dtype=np.int64)
        return idx, lengths

    # -- data ------------------------------------------------------------------------------

    def episode(self, episode_index: int) -> dict[str, Any]:
        """All frames of episode ``episode_index`` (cached; treat the arrays as read-only)."""
        episode_index = int(episode_index)
        if episode_index in self._cache:
            self._cache.move_to_end(episode_index)
            return self._cache[episode_index]
        if episode_index not in self._by_index:
            raise IndexError(
                f"Episode {episode_index} is not in {self.root} ({self.num_episodes} episodes, indexes "
                f"{min(self._by_index)}..{max(self._by_index)})."
            )
        data = self._load_episode(self.episodes[self._by_index[episode_index]])
        size = sum(v.nbytes for v in data.values() if isinstance(v, np.ndarray))
        if size <= self.cache_bytes_limit:
            self._cache[episode_index] = data
            self._cache_bytes += size
            while self._cache_bytes > self.cache_bytes_limit:
                _, evicted = self._cache.popitem(last=False)
                self._cache_bytes -= sum(v.nbytes for v in evicted.values() if isinstance(v, np.ndarray))
        return data

    def _load_episode(self, ep: dict[str, Any]) -> dict[str, Any]:
        path = self.data_path(ep)
        table = _read_parquet(path, filters=[("episode_index", "==", int(ep["episode_index"]))])
        length = int(ep["length"])
        if table.num_rows != length:
            raise DatasetError(
                f"Episode {ep['episode_index']}: the metadata says {length} frames but {path} holds "
                f"{table.num_rows} rows for it."
            )
        table = table.sort_by("frame_index") if "frame_index" in table.column_names else table
        out: dict[str, Any] = {"episode_index": int(ep["episode_index"])}
        for key, ft in self.features.items():
            if ft["dtype"] == "video":
                out[key] = self._decode_video(ep, key, length)
                continue
            if key not in table.column_names:
                raise DatasetError(f"Feature {key!r} is declared in info.json but {path} has no such column.")
            column = table.column(key)
            if ft["dtype"] == "image":
                out[key] = _decode_images(column)
            elif ft["dtype"] in layout.NUMERIC_DTYPES:
                try:
                    out[key] = layout.from_arrow(column, layout.feature_shape(ft))
                except ValueError as err:
                    raise DatasetError(f"Feature {key!r} in {path}: {err}.") from err
            else:
                out[key] = column.to_pylist()
        task_index = out.get("task_index")
        if task_index is not None and len(task_index):
            out["task"] = self.tasks.get(int(task_index[0]), "")
        else:
            out["task"] = (ep.get("tasks") or [""])[0]
        return out

    def _decode_video(self, ep: dict[str, Any], key: str, length: int) -> np.ndarray:
        path = self.video_path(ep, key)
        start = float(ep.get(f"videos/{key}/from_timestamp", 0.0))
        try:
            return decode_span(path, start, length, self.fps)
        except (ValueError, FileNotFoundError) as err:
            raise DatasetError(f"Episode {ep['episode_index']}, {key!r}: {err}") from err

    def __len__(self) -> int:
        return self.num_frames

    def locate(self, index: int) -> tuple[int, int]:
        """``(episode_index, frame_index)`` of the frame with global ``index``."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"Frame {index} is out of range for a dataset of {self.num_frames} frames.")
        pos = int(np.searchsorted(self._starts, index, side="right")) - 1
        ep = self.episodes[pos]
        return int(ep["episode_index"]), int(index - ep["dataset_from_index"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode_index, frame = self.locate(int(index))
        data = self.episode(episode_index)
        item: dict[str, Any] = {}
        for key, value in data.items():
            item[key] = value[frame] if isinstance(value, np.ndarray | list) else value
        return item

    def compute_stats(self, keys: list[str] | None = None) -> dict[str, dict[str, list]]:
        """Recompute statistics of numeric features from the data files (e.g. stats.json lacks q01/q99)."""
        keys = keys if keys is not None else stats_keys(self.features)
        unknown = [k for k in keys if k not in self.features or not layout.is_numeric(self.features[k])]
        if unknown:
            raise KeyError(
                f"No numeric features {unknown} in {self.root}; numeric features: "
                f"{stats_keys(self.features)}."
            )
        paths = sorted({self.data_path(ep) for ep in self.episodes})
        values: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for path in paths:
            table = _read_parquet(path, columns=keys)
            for key in keys:
                values[key].append(
                    layout.from_arrow(table.column(key), layout.feature_shape(self.features[key]))
                )
        return {k: compute_stats(np.concatenate(v)) for k, v in values.items()}


def _decode_images(column: pa.ChunkedArray) -> np.ndarray:
    """Decode an image column (HF ``Image`` struct with ``bytes``, or raw binary) to uint8 [T, H, W, 3]."""
    array = column.combine_chunks()
    if pa.types.is_struct(array.type):
        array = array.field("bytes")
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in array.to_pylist()])
