"""A LeRobot-format LIBERO dataset (what users download: ``observation.images.image``,
``observation.images.wrist_image``, 8-D ``observation.state``, 7-D ``action``, LIBERO task
strings) reads through our reader and trains with ``--cameras image,wrist_image``.

The dataset is hand-built at 32 px with that schema; its ``stats.json`` is written the way
LeRobot writes one (image statistics too, and, as in datasets converted from v2.1, no
quantiles), so the test also covers the path from a download to a trainable dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vlaworks.cli import app
from vlaworks.data.check import check_dataset
from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import DatasetWriter, LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.models.checkpoint import load_policy
from vlaworks.processing import PolicyProcessor

SIZE = 32
TASKS = (
    "pick up the black bowl between the plate and the ramekin and place it on the plate",
    "put both the alphabet soup and the tomato sauce in the basket",
)
CAMERAS = ("observation.images.image", "observation.images.wrist_image")
FEATURES = {
    **{k: {"dtype": "video", "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channel"]}
       for k in CAMERAS},
    "observation.state": {"dtype": "float32", "shape": [8], "names": {"motors": [f"s{i}" for i in range(8)]}},
    "action": {"dtype": "float32", "shape": [7], "names": {"motors": [f"a{i}" for i in range(7)]}},
}


def libero_frame(t: int, episode: int, rng: np.random.Generator) -> dict:
    """One frame: views that differ per camera and time, LIBERO-like state and action."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    views = {
        key: np.stack([(xx * 8 + 20 * t) % 256, (yy * 8 + 60 * c) % 256, np.full_like(xx, 40 * episode)], -1)
        for c, key in enumerate(CAMERAS)
    }
    state = np.concatenate([[-0.2, 0.0, 1.17], rng.normal(0, 0.3, 3), [0.039, -0.039]])
    state += rng.normal(0, 0.01, 8)
    action = np.concatenate([rng.uniform(-0.9, 0.9, 6), [1.0 if t > 3 else -1.0]])
    return {
        **{k: v.astype(np.uint8) for k, v in views.items()},
        "observation.state": state.astype(np.float32),
        "action": action.astype(np.float32),
        "task": TASKS[episode % 2],
    }


def lerobot_style_stats(root: Path) -> None:
    """Replace stats.json with what a LeRobot v2.1 -> v3 conversion ships: min / max / mean /
    std / count for numbers, per-channel ``[3, 1, 1]`` statistics for each camera."""
    path = root / "meta" / "stats.json"
    stats = json.loads(path.read_text())
    out = {k: {s: stats[k][s] for s in ("min", "max", "mean", "std", "count")} for k in stats}
    for key in CAMERAS:
        out[key] = {s: [[[0.5]], [[0.5]], [[0.5]]] for s in ("min", "max", "mean", "std")} | {"count": [100]}
    path.write_text(json.dumps(out))


def write_libero_dataset(root: Path) -> Path:
    """Three episodes (9, 7 and 8 frames) of the LeRobot LIBERO schema at ``root``."""
    rng = np.random.default_rng(0)
    with DatasetWriter(root, fps=10, features=FEATURES, robot_type="panda") as writer:
        for episode, length in enumerate((9, 7, 8)):
            for t in range(length):
                writer.add_frame(libero_frame(t, episode, rng))
            writer.save_episode()
    lerobot_style_stats(root)
    return root


@pytest.fixture(scope="module")
def libero_dataset(tmp_path_factory) -> Path:
    return write_libero_dataset(tmp_path_factory.mktemp("libero") / "libero_lerobot")


def test_the_reader_sees_libero_cameras_state_action_and_tasks(libero_dataset):
    ds = LeRobotDataset(libero_dataset)
    assert ds.camera_names == ["image", "wrist_image"]
    assert ds.camera_key("wrist_image") == "observation.images.wrist_image"
    episode = ds.episode(1)
    assert episode["observation.images.image"].shape == (7, SIZE, SIZE, 3)
    assert episode["observation.state"].shape == (7, 8) and episode["action"].shape == (7, 7)
    assert episode["task"] == TASKS[1] and set(ds.tasks.values()) == set(TASKS)


def test_windows_carry_both_views_and_the_8d_state(libero_dataset):
    ds = LeRobotDataset(libero_dataset)
    stats = ds.compute_stats(["action", "observation.state"])
    processor = PolicyProcessor(
        ["image", "wrist_image"], image_size=16, chunk_size=4, use_state=True, normalizer=Normalizer(stats)
    )
    row = WindowDataset(ds, processor, training=False)[3]
    assert row["images"].shape == (2, 3, 16, 16) and row["state"].shape == (8,)
    assert row["actions"].shape == (4, 7) and row["camera_names"] == ("image", "wrist_image")


@pytest.mark.slow
def test_a_downloaded_libero_dataset_trains_with_its_camera_names(tmp_path):
    """``check`` notes the missing quantiles; the q99 normaliser needs them, so training says
    how to add them; after ``check --recompute-stats`` a proprio policy trains on both views."""
    data = write_libero_dataset(tmp_path / "data")
    report = check_dataset(data)
    assert report.ok and any("lack ['q01', 'q99']" in note for note in report.notes)
    runner = CliRunner()
    train = ["train", "--recipe", "vlm4vla+proprio", "--backbone", "prismatic-tiny", "--data", str(data),
             "--image-size", "32", "--cameras", "image,wrist_image", "--batch-size", "2", "--steps", "2",
             "--set", "policy.chunk_size=4", "--save-every", "0"]
    refused = runner.invoke(app, [*train, "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 2 and "--recompute-stats" in refused.output
    assert runner.invoke(app, ["check", str(data), "--recompute-stats"]).exit_code == 0
    result = runner.invoke(app, [*train, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    policy = load_policy(tmp_path / "run")
    assert policy.config.cameras == ("image", "wrist_image") and policy.config.state_dim == 8
    frame = libero_frame(2, 0, np.random.default_rng(1))
    obs = {
        "images": {"image": frame[CAMERAS[0]], "wrist_image": frame[CAMERAS[1]]},
        "state": frame["observation.state"],
        "instruction": TASKS[0],
    }
    chunk = policy.predict_chunk([obs, obs])
    assert chunk.shape == (2, 4, 7) and np.isfinite(chunk).all()
