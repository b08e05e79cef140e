"""Key frame and gripper-aware region proposal on hand-made episodes."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.annotate.geometry import PixelBox, mask_box
from vlaworks.annotate.proposal import key_frame, motion_gripper_mask, propose


def _actions(gripper: list[float]) -> np.ndarray:
    actions = np.zeros((len(gripper), 7), dtype=np.float32)
    actions[:, 6] = gripper
    return actions


def test_key_frame_is_the_first_close_after_an_open():
    assert key_frame(_actions([-1, -1, -1, 1, 1, -1, 1])) == 3
    assert key_frame(_actions([-1, 0, 0.5])) == 2  # 0 does not close; > 0 does
    assert key_frame(_actions([1, 1, 1])) is None  # closed from the start (a push): no grasp
    assert key_frame(_actions([-1, -1])) is None
    with pytest.raises(ValueError, match="gripper dimension"):
        key_frame(np.zeros((5, 3)))


def _episode_with_moving_gripper() -> tuple[np.ndarray, np.ndarray]:
    """A still, textured scene with a grey 6x8 'gripper' sliding down to rows 30..37 at frame 9."""
    rng = np.random.default_rng(0)
    scene = rng.integers(90, 130, size=(64, 64, 3), dtype=np.uint8)
    scene[40:46, 20:26] = (200, 30, 30)  # a static red object
    frames = np.repeat(scene[None], 12, axis=0)
    for t in range(12):
        top = min(3 * t, 27) + 3
        frames[t, top : top + 6, 16:24] = 60
    truth = np.zeros((64, 64), dtype=bool)
    truth[30:36, 16:24] = True
    return frames, truth


def test_motion_finds_the_moving_gripper_not_the_static_object():
    frames, truth = _episode_with_moving_gripper()
    mask = motion_gripper_mask(frames, key=9)
    np.testing.assert_array_equal(mask, truth)


def test_proposal_is_the_gripper_box_grown_by_the_margin_and_clipped():
    gripper = np.zeros((64, 64), dtype=bool)
    gripper[30:36, 16:24] = True
    proposal = propose(gripper, key=9, margin=0.1)  # 0.1 * 64 -> 6 px per side
    assert proposal.key_frame == 9
    assert proposal.box == PixelBox(10, 24, 30, 42)
    corner = np.zeros((64, 64), dtype=bool)
    corner[0:3, 60:64] = True
    assert propose(corner, 0, 0.1).box == PixelBox(54, 0, 64, 9)
    assert propose(np.zeros((8, 8), dtype=bool), 0, 0.1) is None
    with pytest.raises(ValueError, match="margin"):
        propose(gripper, 0, -0.1)


def test_pixel_box_normalises_by_pixel_edges():
    mask = np.zeros((4, 8), dtype=bool)
    mask[1:3, 2:4] = True
    box = mask_box(mask)
    assert box == PixelBox(2, 1, 4, 3)
    assert box.normalised(4, 8) == (0.25, 0.25, 0.5, 0.75)
    assert mask_box(np.zeros((2, 2))) is None
