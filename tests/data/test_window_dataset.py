"""WindowDataset windows, padding at the episode end, normalisation, resizing, collation to Batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.data.dataset import WindowDataset, collate_windows, resize_images
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.data.normalize import Normalizer


@pytest.fixture
def dataset(write_dataset):
    root, episodes = write_dataset(lengths=(6, 9, 4))
    return LeRobotDataset(root), episodes


def test_window_holds_current_images_and_next_actions(dataset):
    ds, episodes = dataset
    windows = WindowDataset(ds, chunk=4)
    assert len(windows) == 19
    item = windows[6 + 2]  # episode 1, frame 2
    assert item["episode_index"] == 1 and item["frame_index"] == 2
    assert item["images"].shape == (2, 3, 32, 32) and item["images"].dtype == torch.uint8
    base = ds.episode(1)["observation.images.base"][2]
    np.testing.assert_array_equal(item["images"][0].permute(1, 2, 0).numpy(), base)
    expected = np.stack([f["action"] for f in episodes[1][2:6]])
    np.testing.assert_array_equal(item["actions"].numpy(), expected)
    assert item["action_mask"].all()
    np.testing.assert_array_equal(item["state"].numpy(), episodes[1][2]["observation.state"])
    assert item["instruction"] == "pick the block 1"


def test_padding_past_episode_end_repeats_last_action(dataset):
    ds, episodes = dataset
    item = WindowDataset(ds, chunk=8)[6 + 7]  # episode 1 has 9 frames: 2 real steps left
    assert item["action_mask"].tolist() == [True, True] + [False] * 6
    last = episodes[1][-1]["action"]
    np.testing.assert_array_equal(item["actions"][1:].numpy(), np.broadcast_to(last, (7, 7)))


def test_normalised_state_and_actions(dataset):
    ds, episodes = dataset
    norm = Normalizer(ds.stats)
    item = WindowDataset(ds, chunk=2, normalizer=norm)[0]
    raw = np.stack([f["action"] for f in episodes[0][:2]])
    np.testing.assert_allclose(item["actions"].numpy(), norm.normalize("action", raw), atol=1e-6)
    assert item["actions"].abs().max() <= 1.0
    state = norm.normalize("observation.state", episodes[0][0]["observation.state"])
    np.testing.assert_allclose(item["state"].numpy(), state, atol=1e-6)


def test_options_cameras_state_and_resize(dataset):
    ds, _ = dataset
    item = WindowDataset(ds, cameras=["observation.images.wrist"], with_state=False, image_size=16)[3]
    assert item["images"].shape == (1, 3, 16, 16) and "state" not in item
    assert item["camera_names"] == ("wrist",)
    with pytest.raises(KeyError, match=r"available cameras: \['base', 'wrist'\]"):
        WindowDataset(ds, cameras=["front"])
    with pytest.raises(ValueError, match="expects 6 dimensions"):
        bad = {**ds.stats, "action": {k: v[:6] if k != "count" else v for k, v in ds.stats["action"].items()}}
        WindowDataset(ds, normalizer=Normalizer(bad))


def test_collate_to_batch(dataset):
    ds, _ = dataset
    windows = WindowDataset(ds, chunk=8)
    batch = collate_windows([windows[i] for i in (0, 12, 18)])
    assert isinstance(batch, Batch)
    assert batch.images.shape == (3, 2, 3, 32, 32) and batch.camera_names == ("base", "wrist")
    assert batch.actions.shape == (3, 8, 7) and batch.state.shape == (3, 8)
    assert batch.action_mask.sum(1).tolist() == [6, 3, 1]
    assert batch.meta["episode_index"].tolist() == [0, 1, 2]
    loader = torch.utils.data.DataLoader(windows, batch_size=4, shuffle=True, collate_fn=collate_windows)
    assert sum(b.size for b in loader) == 19


def test_resize_images_keeps_uint8_and_constant_images():
    images = torch.full((2, 3, 32, 32), 77, dtype=torch.uint8)
    out = resize_images(images, 8)
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.uint8 and (out == 77).all()
