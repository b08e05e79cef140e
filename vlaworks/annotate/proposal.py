"""Stage 1 of seed 000's pipeline: the gripper-aware region proposal.

The key frame ``G`` of an episode is its first gripper-close frame: the first frame whose
gripper command closes after an open one (vlaworks' action convention: dimension
:data:`~vlaworks.envs.base.GRIPPER_INDEX`, ``> 0`` closes). There the gripper sits on the
target, so the box around the gripper's mask, grown by a fixed margin, is where the
target is searched. An episode whose gripper never closes after opening (a push that
keeps it closed throughout) has no key frame.

The gripper mask comes from one of two sources:

* ``oracle``: the world's segmentation (id :data:`GRIPPER_ID`), when the dataset has it;
* ``motion``: a classical detector for a static camera. Before ``G`` the scene is still
  and only the arm moves, so the per-pixel median of frames ``0..G`` is the empty scene
  and the pixels of frame ``G`` that differ from it are the gripper (the seed uses SAM 2
  on the key frames for this; this detector needs no weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vlaworks.annotate.geometry import PixelBox, mask_box
from vlaworks.envs.base import GRIPPER_INDEX

GRIPPER_ID = 1  # the tabletop world's segmentation id of the gripper
GRIPPER_SOURCES = ("oracle", "motion")
#: colour change (max over RGB, 0..255) that counts as motion
MOTION_THRESHOLD = 25
#: motion blobs smaller than this fraction of the largest one are noise
MIN_BLOB_FRACTION = 0.1


@dataclass(frozen=True)
class Proposal:
    """An episode's key frame, the gripper's mask there and the region proposal."""

    key_frame: int
    gripper: np.ndarray  # bool [H, W]
    box: PixelBox


def key_frame(actions: np.ndarray, gripper_index: int = GRIPPER_INDEX) -> int | None:
    """Index of the first frame whose gripper command closes after an open one, or None."""
    actions = np.asarray(actions)
    if actions.ndim != 2 or actions.shape[1] <= gripper_index:
        raise ValueError(
            f"actions must be [T, D] with D > {gripper_index} (the gripper dimension); got "
            f"{list(actions.shape)}."
        )
    closed = actions[:, gripper_index] > 0
    rising = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    return int(rising[0]) if rising.size else None


def motion_gripper_mask(frames: np.ndarray, key: int, threshold: float = MOTION_THRESHOLD) -> np.ndarray:
    """``bool [H, W]``: what moved into frame ``key`` against the median of frames ``0..key``.

    ``frames`` is ``uint8 [T, H, W, 3]`` from a static camera. Blobs smaller than
    :data:`MIN_BLOB_FRACTION` of the largest one are dropped as noise.
    """
    clip = frames[: key + 1].astype(np.int16)
    still = np.median(clip, axis=0)
    moved = np.abs(clip[key] - still).max(axis=-1) > threshold
    labels, count = ndimage.label(moved)
    if count == 0:
        return moved
    sizes = ndimage.sum(moved, labels, index=np.arange(1, count + 1))
    keep = np.flatnonzero(sizes >= MIN_BLOB_FRACTION * sizes.max()) + 1
    return np.isin(labels, keep)


def propose(gripper: np.ndarray, key: int, margin: float) -> Proposal | None:
    """The proposal around ``gripper`` (``bool [H, W]``), grown by ``margin`` × the image's
    longer side on every side; None when the mask is empty."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (a fraction of the image side); got {margin}.")
    box = mask_box(gripper)
    if box is None:
        return None
    height, width = gripper.shape
    grown = box.expanded(int(round(margin * max(height, width))), height, width)
    return Proposal(key, gripper, grown)
