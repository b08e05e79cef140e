"""Training-time augmentation: seeded per sample, shape-preserving, off at inference; option checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlaworks.data.augment import AugmentOptions, augment_views, random_shift
from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.processing import PolicyProcessor
from vlaworks.train.sampler import load_sample


def windows(
    dataset: LeRobotDataset, augment: AugmentOptions | None = None, use_state: bool = False
) -> WindowDataset:
    processor = PolicyProcessor(("base", "wrist"), chunk_size=2, use_state=use_state, augment=augment)
    return WindowDataset(dataset, processor)


@pytest.fixture
def dataset(write_dataset):
    root, _ = write_dataset(lengths=(6, 9))
    return LeRobotDataset(root)


def test_shift_is_a_translated_copy_with_replicated_border() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 8, 8)
    torch.manual_seed(0)
    out = random_shift(images, 2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="replicate").to(torch.uint8)
    for v in range(2):  # each view equals some crop of its padded image
        crops = [padded[v, :, y : y + 8, x : x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[v], c) for c in crops)


def test_augmentation_is_seeded_per_sample(dataset) -> None:
    augmented = windows(dataset, AugmentOptions(shift=4, brightness=0.2, contrast=0.2))
    a = load_sample(augmented, ("robot", 3, 1234))["images"]
    b = load_sample(augmented, ("robot", 3, 1234))["images"]
    c = load_sample(augmented, ("robot", 3, 999))["images"]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    plain = windows(dataset)[3]["images"]
    assert not torch.equal(a, plain)


def test_no_augmentation_returns_exact_frames(dataset) -> None:
    plain = windows(dataset, AugmentOptions())
    assert plain.processor.augment is None
    item = load_sample(plain, ("robot", 7, 5))
    frame = dataset.episode(1)["observation.images.base"][1]
    np.testing.assert_array_equal(item["images"][0].permute(1, 2, 0).numpy(), frame)


def test_colour_jitter_keeps_uint8_range() -> None:
    torch.manual_seed(1)
    images = torch.full((2, 3, 4, 4), 250, dtype=torch.uint8)
    out = augment_views(images, AugmentOptions(brightness=0.5, contrast=0.5))
    assert out.dtype == torch.uint8 and out.shape == images.shape and int(out.max()) <= 255


@pytest.mark.parametrize(
    "bad",
    [{"shift": -1}, {"brightness": 1.0}, {"contrast": -0.1}, {"instructions": 1.5}, {"instructions": -0.1},
     {"instructions": "often"}, {"instructions": True}, {"state_noise": -0.1}, {"state_noise": float("nan")}],
)
def test_bad_options_are_rejected(bad) -> None:
    with pytest.raises(ValueError, match="augment"):
        AugmentOptions(**bad)


def test_instruction_probability_is_checked_with_a_fix() -> None:
    with pytest.raises(ValueError, match=r"augment.instructions .* in \[0, 1\].*instructions=0.5\); got 1.5"):
        AugmentOptions(instructions=1.5)
    assert AugmentOptions(instructions=1).instructions == 1.0 and AugmentOptions(instructions=1).enabled


def test_instruction_augmentation_is_seeded_per_sample(dataset) -> None:
    """Rewording draws from the per-sample seed, after the image draws: the images of an
    augmented run are those of the same run without instruction augmentation."""
    both = windows(dataset, AugmentOptions(shift=4, instructions=1.0))
    original = windows(dataset)[3]["instruction"]
    texts = {load_sample(both, ("robot", 3, seed))["instruction"] for seed in range(8)}
    sample = load_sample(both, ("robot", 3, 5))
    assert sample["instruction"] == load_sample(both, ("robot", 3, 5))["instruction"]
    assert original not in texts and len(texts) > 1
    images_only = windows(dataset, AugmentOptions(shift=4))
    assert torch.equal(sample["images"], load_sample(images_only, ("robot", 3, 5))["images"])
    kept = windows(dataset, AugmentOptions(instructions=0.5))
    assert original in {load_sample(kept, ("robot", 3, seed))["instruction"] for seed in range(16)}


def test_state_noise_is_seeded_gaussian_on_the_state_alone_and_off_offline(dataset) -> None:
    """Noise of the asked std on the state, drawn after the image draws (the images are those of
    the run without it), the same per seed, absent outside training."""
    noisy = windows(dataset, AugmentOptions(shift=4, state_noise=0.5), use_state=True)
    clean = windows(dataset, use_state=True)[3]
    a, b = load_sample(noisy, ("robot", 3, 7)), load_sample(noisy, ("robot", 3, 7))
    assert torch.equal(a["state"], b["state"]) and not torch.equal(a["state"], clean["state"])
    images_only = windows(dataset, AugmentOptions(shift=4), use_state=True)
    shifted = load_sample(images_only, ("robot", 3, 7))
    assert torch.equal(a["images"], shifted["images"]) and torch.equal(shifted["state"], clean["state"])
    assert torch.equal(a["actions"], clean["actions"])
    draws = torch.stack([load_sample(noisy, ("robot", 3, s))["state"] - clean["state"] for s in range(200)])
    assert abs(float(draws.std()) - 0.5) < 0.05 and abs(float(draws.mean())) < 0.05
    offline = windows(dataset, AugmentOptions(state_noise=0.5), use_state=True)
    offline.training = False
    assert torch.equal(offline[3]["state"], clean["state"])
