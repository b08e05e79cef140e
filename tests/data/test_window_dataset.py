"""WindowDataset windows, padding at the episode end, normalisation, resizing, collation to Batch,
and the same frame becoming the same tensors in training and at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.data.augment import AugmentOptions
from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.processing import PolicyProcessor, collate


def windows_of(ds, cameras=("base", "wrist"), chunk=8, normalizer=None, use_state=True, **options):
    processor = PolicyProcessor(
        cameras, chunk_size=chunk, normalizer=normalizer, use_state=use_state, **options
    )
    return WindowDataset(ds, processor)


@pytest.fixture
def dataset(write_dataset):
    root, episodes = write_dataset(lengths=(6, 9, 4))
    return LeRobotDataset(root), episodes


def test_window_holds_current_images_and_next_actions(dataset):
    ds, episodes = dataset
    windows = windows_of(ds, chunk=4)
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
    item = windows_of(ds, chunk=8)[6 + 7]  # episode 1 has 9 frames: 2 real steps left
    assert item["action_mask"].tolist() == [True, True] + [False] * 6
    last = episodes[1][-1]["action"]
    np.testing.assert_array_equal(item["actions"][1:].numpy(), np.broadcast_to(last, (7, 7)))


def test_normalised_state_and_actions(dataset):
    ds, episodes = dataset
    norm = Normalizer(ds.stats)
    item = windows_of(ds, chunk=2, normalizer=norm)[0]
    raw = np.stack([f["action"] for f in episodes[0][:2]])
    np.testing.assert_allclose(item["actions"].numpy(), norm.normalize("action", raw), atol=1e-6)
    assert item["actions"].abs().max() <= 1.0
    state = norm.normalize("observation.state", episodes[0][0]["observation.state"])
    np.testing.assert_allclose(item["state"].numpy(), state, atol=1e-6)


def test_options_cameras_state_and_resize(dataset):
    ds, _ = dataset
    item = windows_of(ds, cameras=["wrist"], use_state=False, image_size=16)[3]
    assert item["images"].shape == (1, 3, 16, 16) and "state" not in item
    assert item["camera_names"] == ("wrist",)
    with pytest.raises(KeyError, match=r"available cameras: \['base', 'wrist'\]"):
        windows_of(ds, cameras=["front"])
    with pytest.raises(ValueError, match="expects 6 dimensions"):
        bad = {**ds.stats, "action": {k: v[:6] if k != "count" else v for k, v in ds.stats["action"].items()}}
        windows_of(ds, normalizer=Normalizer(bad))


def test_collate_to_batch(dataset):
    ds, _ = dataset
    windows = windows_of(ds, chunk=8)
    batch = collate([windows[i] for i in (0, 12, 18)])
    assert isinstance(batch, Batch)
    assert batch.images.shape == (3, 2, 3, 32, 32) and batch.camera_names == ("base", "wrist")
    assert batch.actions.shape == (3, 8, 7) and batch.state.shape == (3, 8)
    assert batch.action_mask.sum(1).tolist() == [6, 3, 1]
    assert batch.meta["episode_index"].tolist() == [0, 1, 2]
    loader = torch.utils.data.DataLoader(windows, batch_size=4, shuffle=True, collate_fn=collate)
    assert sum(b.size for b in loader) == 19


def test_same_frame_gives_the_same_batch_in_training_and_at_inference(dataset):
    """The training window of a frame and the live observation of that frame (as the env
    reports it: raw images, raw state, instruction) become identical Batch tensors."""
    ds, _ = dataset
    norm = Normalizer(ds.stats)
    processor = PolicyProcessor(
        ("base", "wrist"), chunk_size=4, normalizer=norm, use_state=True, image_size=16
    )
    trained = collate([WindowDataset(ds, processor)[6 + 3]])
    episode = ds.episode(1)  # the frames as stored (the video codec is lossy)
    live = processor.batch(
        [
            {
                "images": {c: episode[f"observation.images.{c}"][3] for c in ("wrist", "base")},
                "state": episode["observation.state"][3],
                "instruction": "pick the block 1",
            }
        ]
    )
    assert torch.equal(trained.images, live.images) and trained.images.shape == (1, 2, 3, 16, 16)
    assert torch.equal(trained.state, live.state)
    assert trained.instructions == live.instructions and trained.camera_names == live.camera_names


def test_offline_windows_skip_augmentation(dataset):
    ds, _ = dataset
    augment = AugmentOptions(shift=4)
    processor = PolicyProcessor(("base",), chunk_size=2, augment=augment)
    plain = WindowDataset(ds, PolicyProcessor(("base",), chunk_size=2))[3]["images"]
    assert torch.equal(WindowDataset(ds, processor, training=False)[3]["images"], plain)


def test_windows_of_a_prompted_policy_carry_the_episode_annotation(dataset):
    from vlaworks.data.annotations import EpisodeAnnotation, write_annotations
    from vlaworks.data.lerobot import DatasetError

    ds, _ = dataset
    prompted = dict(prompt_mode="text+mask", pixel_masks=True, visual_prompts=True)
    with pytest.raises(DatasetError, match="vlaworks annotate"):
        windows_of(ds, **prompted)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:12, 8:20] = 1
    kept = dict(valid=True, backend="oracle", camera="base", key_frame=2, phrase="block", mask=mask,
                box=(0.25, 0.125, 0.625, 0.375), line=((0.3, 0.25), (0.6, 0.25)), points=((0.4, 0.25),))
    dropped = dict(valid=False, backend="oracle", camera="base", key_frame=-1, phrase="block",
                   mask=np.zeros_like(mask), reason="the gripper never closes")
    write_annotations(ds.root, [EpisodeAnnotation(episode_index=0, **kept)])
    with pytest.raises(DatasetError, match=r"lack episodes \[1, 2\]"):
        windows_of(ds, **prompted)
    write_annotations(ds.root, [EpisodeAnnotation(episode_index=e, **kept) for e in (0, 2)]
                      + [EpisodeAnnotation(episode_index=1, **dropped)])
    windows = windows_of(ds, **prompted)
    first, late, discarded = windows[0], windows[5], windows[6]  # episode 0 frames 0 and 5, episode 1
    for item in (first, late):  # the key-frame mask conditions every frame of its episode
        np.testing.assert_array_equal(item["pixel_masks"][0].numpy(), mask.astype(bool))
        assert not item["pixel_masks"][1].any() and item["visual_prompts"] == []
    assert not discarded["pixel_masks"].any() and discarded["visual_prompts"] == []
    batch = collate([first, discarded])
    assert batch.pixel_masks.shape == (2, 2, 32, 32) and batch.visual_prompts == [[], []]
    boxes = windows_of(ds, **{**prompted, "prompt_mode": "box"})[0]["visual_prompts"]
    assert [(p.kind, p.view, p.coords) for p in boxes] == [("box", 0, ((0.25, 0.125), (0.625, 0.375)))]
