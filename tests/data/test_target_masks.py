"""Ground-truth target masks from a generated dataset's segmentation reach the Batch
(``seg_mask`` policies), move with the random shift, and stay absent at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlaworks.data.augment import AugmentOptions, Shift
from vlaworks.data.dataset import WindowDataset
from vlaworks.data.layout import TARGET_SEGMENT_KEY
from vlaworks.data.lerobot import DatasetError, LeRobotDataset
from vlaworks.processing import PolicyProcessor, collate


@pytest.fixture(scope="module")
def segmented(tmp_path_factory) -> LeRobotDataset:
    from vlaworks.sim.generate import generate

    out = tmp_path_factory.mktemp("seg") / "data"
    generate(["spatial"], episodes=1, out=out, image_size=32, layout="fixed", segmentation=True)
    return LeRobotDataset(out)


def test_target_masks_reach_the_batch(segmented) -> None:
    processor = PolicyProcessor(("base", "wrist"), chunk_size=4, target_masks=True)
    windows = WindowDataset(segmented, processor, training=False)
    batch = collate([windows[i] for i in (0, 5)])
    assert batch.target_masks.shape == (2, 2, 32, 32) and batch.target_masks.dtype == torch.bool
    episode = segmented.episode(0)
    for row, t in enumerate((0, 5)):
        for view, camera in enumerate(("base", "wrist")):
            truth = episode[f"observation.segmentation.{camera}"][t] == episode[TARGET_SEGMENT_KEY][t]
            np.testing.assert_array_equal(batch.target_masks[row, view].numpy(), truth)
    assert batch.target_masks[:, 0].any()  # the target is in the base view
    # resized with the views, and moved with their random shift
    small = PolicyProcessor(("base",), chunk_size=4, image_size=16, target_masks=True)
    assert WindowDataset(segmented, small, training=False)[0]["target_masks"].shape == (1, 16, 16)
    shifted = PolicyProcessor(("base",), chunk_size=4, target_masks=True, augment=AugmentOptions(shift=4))
    torch.manual_seed(3)
    row = WindowDataset(segmented, shifted, training=True)[0]
    torch.manual_seed(3)
    shift = Shift.draw(1, 4)
    assert (shift.dx[0], shift.dy[0]) != (4, 4)  # this draw moves the view
    plain = windows[0]["target_masks"][:1]
    assert torch.equal(row["target_masks"], shift.masks(plain))
    assert torch.equal(row["images"], shift.maps(windows[0]["images"][:1]))


def test_inference_rows_and_other_processors_carry_none(segmented) -> None:
    reading = PolicyProcessor(("base",), chunk_size=4, target_masks=True)
    obs = {"images": {"base": np.zeros((32, 32, 3), np.uint8)}, "instruction": "pick"}
    assert reading.batch([obs]).target_masks is None  # live observations have no ground truth
    assert PolicyProcessor.from_dict(reading.to_dict()).reads_target_masks
    assert "target_masks" not in PolicyProcessor(("base",), chunk_size=4).to_dict()
    plain = WindowDataset(segmented, PolicyProcessor(("base",), chunk_size=4), training=False)
    assert "target_masks" not in plain[0]


def test_a_dataset_without_segmentation_is_refused(write_dataset) -> None:
    root, _ = write_dataset(lengths=(3,))
    processor = PolicyProcessor(("base",), chunk_size=2, target_masks=True)
    with pytest.raises(DatasetError, match="vlaworks generate --segmentation"):
        WindowDataset(LeRobotDataset(root), processor)
