"""DatasetWriter / LeRobotDataset: round trip, published-layout reading, atomic writes, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_fakes import make_frame, tabletop_features

from vlaworks.data.lerobot import DatasetError, DatasetWriter, LeRobotDataset
from vlaworks.data.stats import compute_stats

EXACT_KEYS = (
    "observation.state",
    "action",
    "observation.depth.base",
    "observation.segmentation.base",
    "observation.camera.base.intrinsics",
    "observation.camera.base.extrinsics",
)


def test_round_trip_exact_arrays_and_close_video(write_dataset):
    root, episodes = write_dataset()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and ds.num_frames == 19 and ds.fps == 10
    assert ds.camera_names == ["base", "wrist"]
    assert ds.tasks == {0: "pick the block 0", 1: "pick the block 1"}
    assert ds.info["codebase_version"] == "v3.0"
    for e, frames in enumerate(episodes):
        ep = ds.episode(e)
        assert ep["task"] == frames[0]["task"]
        np.testing.assert_array_equal(ep["frame_index"], np.arange(len(frames)))
        np.testing.assert_allclose(ep["timestamp"], np.arange(len(frames)) / 10, atol=1e-6)
        for key in EXACT_KEYS:
            expected = np.stack([f[key] for f in frames])
            assert ep[key].dtype == expected.dtype
            np.testing.assert_array_equal(ep[key], expected)
        for key in ("observation.images.base", "observation.images.wrist"):
            expected = np.stack([f[key] for f in frames]).astype(np.int16)
            decoded = ep[key].astype(np.int16)
            assert decoded.shape == expected.shape and ep[key].dtype == np.uint8
            assert np.abs(decoded - expected).mean() < 6.0  # lossy h264 on tiny 32x32 gradients
            # every decoded frame is closest to its own source frame (order and alignment kept)
            distance = np.abs(decoded[:, None] - expected[None]).mean(axis=(2, 3, 4))
            np.testing.assert_array_equal(distance.argmin(axis=1), np.arange(len(frames)))


def test_several_episodes_share_one_video_and_data_file(write_dataset):
    root, _ = write_dataset()
    videos = root / "videos/observation.images.base/chunk-000"
    assert sorted(p.name for p in videos.iterdir()) == ["file-000.mp4"]
    assert sorted(p.name for p in (root / "data/chunk-000").iterdir()) == ["file-000.parquet"]
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["dataset_from_index"] for r in rows] == [0, 6, 15]
    assert [r["videos/observation.images.base/from_timestamp"] for r in rows] == [0.0, 0.6, 1.5]
    assert rows[1]["videos/observation.images.wrist/to_timestamp"] == pytest.approx(1.5)
    assert rows[0]["tasks"] == ["pick the block 0"]


def test_lossless_codec_and_file_rollover_are_exact(write_dataset):
    root, episodes = write_dataset(video_codec="lossless", data_file_mb=1e-6, video_file_mb=1e-6)
    assert len(list((root / "data/chunk-000").iterdir())) == 3
    assert len(list((root / "videos/observation.images.wrist/chunk-000").iterdir())) == 3
    ds = LeRobotDataset(root)
    for e, frames in enumerate(episodes):
        for key in ("observation.images.base", "observation.images.wrist", "action"):
            np.testing.assert_array_equal(ds.episode(e)[key], np.stack([f[key] for f in frames]))


def test_stats_equal_recomputation(write_dataset):
    root, episodes = write_dataset()
    ds = LeRobotDataset(root)
    cameras = {"observation.images.base", "observation.images.wrist"}
    assert set(ds.stats) == {"observation.state", "action", *cameras}
    for key in ("observation.images.base", "observation.images.wrist"):  # written from the raw frames
        pixels = np.concatenate([np.stack([f[key] for f in frames]) for frames in episodes]) / 255.0
        channels = pixels.reshape(-1, 3)
        np.testing.assert_allclose(np.ravel(ds.stats[key]["mean"]), channels.mean(0), rtol=1e-9)
        np.testing.assert_allclose(np.ravel(ds.stats[key]["std"]), channels.std(0), rtol=1e-6)
        assert np.ravel(ds.stats[key]["max"]).tolist() == channels.max(0).tolist()
        assert np.shape(ds.stats[key]["mean"]) == (3, 1, 1) and ds.stats[key]["count"] == [19]
    for key in ("observation.state", "action"):
        expected = compute_stats(np.concatenate([np.stack([f[key] for f in frames]) for frames in episodes]))
        for name in ("min", "max", "mean", "std", "q01", "q99", "count"):
            np.testing.assert_allclose(ds.stats[key][name], expected[name], rtol=1e-6)
        assert ds.stats[key]["count"] == [19]
    recomputed = ds.compute_stats(["action"])
    np.testing.assert_allclose(recomputed["action"]["q99"], ds.stats["action"]["q99"])


def test_random_frame_access_and_cache(write_dataset):
    root, episodes = write_dataset()
    ds = LeRobotDataset(root, cache_mb=1.0)
    frame = ds[7]
    assert frame["episode_index"] == 1 and frame["frame_index"] == 1
    np.testing.assert_array_equal(frame["action"], episodes[1][1]["action"])
    assert ds.locate(18) == (2, 3)
    assert ds.episode(1) is ds.episode(1)
    with pytest.raises(IndexError, match="out of range"):
        ds[19]
    with pytest.raises(IndexError, match="Episode 7"):
        ds.episode(7)


def test_overwrite_replaces_and_refuses_by_default(write_dataset, tmp_path):
    root, _ = write_dataset(lengths=(3,))
    with pytest.raises(FileExistsError, match="already holds a dataset; rerun with --overwrite"):
        DatasetWriter(root, 10, tabletop_features())
    root2, _ = write_dataset(lengths=(2, 2), overwrite=True)
    assert root2 == root and LeRobotDataset(root).num_episodes == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_overwrite_never_deletes_what_a_writer_did_not_make(write_dataset, tmp_path):
    foreign = tmp_path / "ds"
    (foreign / "important").mkdir(parents=True)
    (foreign / "important" / "notes.txt").write_text("keep me")
    (foreign / "thesis.tex").write_text("keep me too")
    with pytest.raises(FileExistsError, match=r"not a dataset folder \(it holds important/, thesis.tex\)"):
        write_dataset(lengths=(2,), overwrite=True)
    assert (foreign / "important" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no partial write left behind

    root, _ = write_dataset(lengths=(2,), name="real")
    (root / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"entries vlaworks did not write \(notes.txt\)"):
        write_dataset(lengths=(3,), name="real", overwrite=True)
    assert LeRobotDataset(root).num_frames == 2 and (root / "notes.txt").exists()


def test_empty_folder_is_written_without_overwrite(write_dataset, tmp_path):
    (tmp_path / "ds").mkdir()
    root, _ = write_dataset(lengths=(2,))
    assert LeRobotDataset(root).num_frames == 2


def test_next_writer_cleans_up_after_killed_writers_of_any_name(write_dataset, tmp_path, caplog):
    old, _ = write_dataset(lengths=(2,), name="old")
    dead = 2**22 + 12345  # above the default pid_max: no such process
    partial = tmp_path / f".other.writing-{dead}"
    (partial / "data").mkdir(parents=True)
    os.rename(old, tmp_path / f".old.replaced-{dead}")  # an --overwrite killed between its renames
    caplog.set_level("WARNING", logger="vlaworks.data.lerobot")
    write_dataset(lengths=(3,), name="new")
    assert not partial.exists()
    assert LeRobotDataset(old).num_frames == 2  # the old dataset is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old"]
    assert "removed partial dataset" in caplog.text and "restored dataset" in caplog.text
    os.rename(old, tmp_path / f".old.replaced-{dead}")
    with pytest.raises(FileExistsError, match="already holds a dataset"):  # restored, then refused
        write_dataset(lengths=(3,), name="old")
    assert LeRobotDataset(old).num_frames == 2


# -- a dataset made by hand to the published v3 layout (independent of our writer) -----------


def _encode_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _flat_frames(n: int, offset: int) -> np.ndarray:
    """Frames of one flat grey level each (10 * (offset + k)), easy to recognise after lossy coding."""
    levels = (np.arange(n) + offset) * 10 + 20
    return np.broadcast_to(levels[:, None, None, None], (n, 16, 16, 3)).astype(np.uint8).copy()


def _handmade_v3(root: Path) -> dict:
    """Two episodes (5 and 7 frames) in ONE mp4, data split over two parquet files, stats columns."""
    fps, lengths = 10, [5, 7]
    key = "observation.images.image"
    info = {
        "codebase_version": "v3.0",
        "robot_type": "panda",
        "total_episodes": 2,
        "total_frames": 12,
        "total_tasks": 2,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": "0:2"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            key: {
                "dtype": "video",
                "shape": [16, 16, 3],
                "names": ["height", "width", "channel"],
                "info": {"video.fps": fps, "video.codec": "h264", "video.pix_fmt": "yuv420p"},
            },
            "observation.state": {"dtype": "float32", "shape": [8], "names": None},
            "action": {"dtype": "float32", "shape": [7], "names": None},
            "next.done": {"dtype": "bool", "shape": [1], "names": None},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/stats.json").write_text(json.dumps({"action": {"mean": [0.0] * 7, "std": [1.0] * 7}}))
    # pandas writes an unnamed index (the task strings) as "__index_level_0__".
    pq.write_table(
        pa.table({"task_index": [0, 1], "__index_level_0__": ["open the drawer", "close the drawer"]}),
        root / "meta/tasks.parquet",
    )
    rng = np.random.default_rng(1)
    data = {}
    start = 0
    episodes = []
    for e, length in enumerate(lengths):
        state = rng.normal(size=(length, 8)).astype(np.float32)
        action = rng.normal(size=(length, 7)).astype(np.float32)
        table = pa.table(
            {
                "observation.state": pa.array(state.tolist(), pa.list_(pa.float32())),
                "action": pa.array(action.tolist(), pa.list_(pa.float32())),
                "next.done": pa.array([t == length - 1 for t in range(length)]),
                "timestamp": pa.array(np.arange(length, dtype=np.float32) / fps),
                "frame_index": pa.array(np.arange(length)),
                "episode_index": pa.array(np.full(length, e)),
                "index": pa.array(np.arange(start, start + length)),
                "task_index": pa.array(np.full(length, 1 - e)),
            }
        )
        path = root / f"data/chunk-000/file-{e:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        data[e] = {"observation.state": state, "action": action}
        episodes.append(
            {
                "episode_index": e,
                "tasks": [["close the drawer", "open the drawer"][e]],
                "length": length,
                "data/chunk_index": 0,
                "data/file_index": e,
                "dataset_from_index": start,
                "dataset_to_index": start + length,
                f"videos/{key}/chunk_index": 0,
                f"videos/{key}/file_index": 0,
                f"videos/{key}/from_timestamp": start / fps,
                f"videos/{key}/to_timestamp": (start + length) / fps,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
                "stats/action/mean": action.mean(0).tolist(),
            }
        )
        start += length
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(episodes), root / "meta/episodes/chunk-000/file-000.parquet")
    _encode_mp4(root / f"videos/{key}/chunk-000/file-000.mp4", _flat_frames(12, 0), fps)
    return data


def test_reads_handmade_published_layout(tmp_path):
    root = tmp_path / "libero_like"
    data = _handmade_v3(root)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 2 and ds.num_frames == 12
    assert ds.tasks == {0: "open the drawer", 1: "close the drawer"}
    assert ds.camera_keys == ["observation.images.image"]
    assert ds.camera_key("image") == "observation.images.image"
    for e, offset in ((0, 0), (1, 5)):
        ep = ds.episode(e)
        np.testing.assert_array_equal(ep["observation.state"], data[e]["observation.state"])
        np.testing.assert_array_equal(ep["action"], data[e]["action"])
        video = ep["observation.images.image"]
        assert video.shape == (len(ep["action"]), 16, 16, 3)
        levels = video.reshape(len(video), -1).mean(1)
        np.testing.assert_allclose(levels, _flat_frames(len(video), offset)[:, 0, 0, 0], atol=3)
        assert ep["next.done"].tolist() == [False] * (len(video) - 1) + [True]
    assert ds.episode(0)["task"] == "close the drawer" and ds.episode(1)["task"] == "open the drawer"


# -- atomic writes ------------------------------------------------------------------------------


def test_exception_mid_write_leaves_nothing(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match="boom"), DatasetWriter(root, 10, tabletop_features()) as writer:
        for t in range(3):
            writer.add_frame(make_frame(t, 0, rng, "task"))
        writer.save_episode()
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="folder does not exist"):
        LeRobotDataset(root)


KILLED_WRITER = """
import sys, numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from data_fakes import make_frame, tabletop_features
from vlaworks.data.lerobot import DatasetWriter
rng = np.random.default_rng(0)
with DatasetWriter(Path(sys.argv[1]), 10, tabletop_features()) as writer:
    for e in range(10_000):
        for t in range(4):
            writer.add_frame(make_frame(t, e, rng, "task"))
        writer.save_episode()
        print("saved", e, flush=True)
"""


def test_killed_writer_leaves_no_readable_dataset(tmp_path):
    root = tmp_path / "ds"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(root), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        for _ in range(3):
            assert proc.stdout.readline().startswith("saved")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not root.exists()
    leftovers = list(tmp_path.glob(".ds.writing-*"))
    assert len(leftovers) == 1 and (leftovers[0] / "data").exists()
    with pytest.raises(DatasetError, match="folder does not exist"):
        LeRobotDataset(root)
    with pytest.raises(DatasetError, match="info.json is missing"):
        LeRobotDataset(leftovers[0])
    time.sleep(0.05)
    rng = np.random.default_rng(0)
    with DatasetWriter(root, 10, tabletop_features()) as writer:
        writer.add_frame(make_frame(0, 0, rng, "task"))
        writer.save_episode()
    assert LeRobotDataset(root).num_frames == 1
    assert list(tmp_path.glob(".ds.writing-*")) == []


# -- clear errors -----------------------------------------------------------------------------


def test_add_frame_errors_name_the_problem(tmp_path):
    rng = np.random.default_rng(0)
    writer = DatasetWriter(tmp_path / "ds", 10, tabletop_features())
    frame = make_frame(0, 0, rng, "task")
    with pytest.raises(ValueError, match=r"'action' must have shape \[7\]; got \[6\]"):
        writer.add_frame(frame | {"action": np.zeros(6, np.float32)})
    with pytest.raises(ValueError, match=r"'observation.images.wrist' must be uint8 \[32, 32, 3\]"):
        writer.add_frame(frame | {"observation.images.wrist": np.zeros((16, 16, 3), np.uint8)})
    nan_action = frame["action"].copy()
    nan_action[2] = np.nan
    with pytest.raises(ValueError, match="'action' has 1 NaN"):
        writer.add_frame(frame | {"action": nan_action})
    with pytest.raises(ValueError, match=r"missing keys \['action'\]"):
        writer.add_frame({k: v for k, v in frame.items() if k != "action"})
    with pytest.raises(ValueError, match="no frames buffered"):
        writer.save_episode()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_bad_features_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        DatasetWriter(tmp_path / "a", 10, {"index": {"dtype": "int64", "shape": [1]}})
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        DatasetWriter(tmp_path / "b", 10, {"observation.images.x": {"dtype": "video", "shape": [3, 8, 8]}})
    with pytest.raises(ValueError, match="dtype 'complex64'"):
        DatasetWriter(tmp_path / "c", 10, {"x": {"dtype": "complex64", "shape": [1]}})


def test_missing_camera_names_the_available_ones(write_dataset):
    root, _ = write_dataset(lengths=(2,))
    with pytest.raises(KeyError, match=r"available cameras: \['base', 'wrist'\]"):
        LeRobotDataset(root).camera_key("side")


DATA = "data/chunk-000/file-000.parquet"
WRIST = "videos/observation.images.wrist/chunk-000/file-000.mp4"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "meta/info.json").unlink(), "info.json is missing"),
        (lambda r: (r / "meta/tasks.parquet").unlink(), "tasks.parquet is missing"),
        (lambda r: (r / "meta/info.json").write_text("{not json"), "not valid JSON"),
        (lambda r: (r / DATA).write_bytes(b"garbage"), "Could not parse parquet"),
        (lambda r: (r / EPISODES).write_bytes(b"PAR1xx"), "Could not parse"),
        (lambda r: (r / WRIST).unlink(), "Video file .* missing"),
        (lambda r: (r / DATA).unlink(), "Data file .* missing"),
        (
            lambda r: pq.write_table(pq.read_table(r / DATA).slice(0, 10), r / DATA),
            "frame count mismatch: the metadata says 19 frames but the data files hold 10",
        ),
        (
            lambda r: (r / "meta/info.json").write_text(
                json.dumps(json.loads((r / "meta/info.json").read_text()) | {"total_frames": 20})
            ),
            "says 20 frames but episode lengths sum to 19",
        ),
        (
            lambda r: (r / "meta/info.json").write_text(
                json.dumps(json.loads((r / "meta/info.json").read_text()) | {"codebase_version": "v2.1"})
            ),
            "only v3.x is supported",
        ),
    ],
)
def test_damaged_dataset_raises_clear_error(write_dataset, damage, message):
    root, _ = write_dataset()
    damage(root)
    with pytest.raises(DatasetError, match=message):
        LeRobotDataset(root)


def test_truncated_video_is_reported_on_read(write_dataset):
    root, _ = write_dataset(lengths=(4, 4))
    ds = LeRobotDataset(root)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[1]["videos/observation.images.base/from_timestamp"] = 5.0
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DatasetError, match="Episode 1, 'observation.images.base'"):
        LeRobotDataset(root).episode(1)
    assert ds.episode(0)["action"].shape == (4, 7)
