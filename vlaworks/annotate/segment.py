"""Stage 2b: segmentation of the target inside the region proposal, with pluggable backends.

A segmenter is any object with a ``name`` and ``__call__(SegmentRequest) -> Segmentation``.
:func:`make_segmenter` builds one from a command-line spec:

=================================  ===========================================================
spec                               backend
=================================  ===========================================================
``oracle``                         the world's ground-truth target mask (needs a dataset made
                                   with ``vlaworks generate --segmentation``); the reference
                                   the others are measured against
``classical``                      colour / region segmentation inside the proposal, no
                                   weights (:mod:`vlaworks.annotate.classical`)
``sam:PATH``                       HF ``SamModel`` prompted with the proposal box
``owlv2:PATH+sam:PATH``            HF OWLv2 detects the phrase; its best box inside the proposal
                                   prompts SAM (the seed's detector + SAM stage)
``grounding-dino:PATH+sam:PATH``   the same with Grounding DINO as the detector
=================================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vlaworks.annotate.geometry import PixelBox


@dataclass(frozen=True)
class SegmentRequest:
    """What a segmenter sees of one episode's key frame.

    ``image`` is ``uint8 [H, W, 3]``; ``gripper`` the gripper's ``bool [H, W]`` mask from the
    proposal stage; ``truth`` the ground-truth target mask when the dataset has one (only
    the oracle may read it).
    """

    image: np.ndarray
    phrase: str
    proposal: PixelBox
    gripper: np.ndarray
    truth: np.ndarray | None = None


@dataclass(frozen=True)
class Segmentation:
    """A segmenter's answer: ``bool [H, W]`` target mask and a confidence in [0, 1]."""

    mask: np.ndarray
    confidence: float


class Segmenter(Protocol):
    name: str

    def __call__(self, request: SegmentRequest) -> Segmentation: ...


class OracleSegmenter:
    """The ground truth itself: IoU 1 by construction, the reference for the other backends."""

    name = "oracle"

    def __call__(self, request: SegmentRequest) -> Segmentation:
        if request.truth is None:
            raise ValueError(
                "The oracle backend needs ground-truth segmentation; make the dataset with "
                "`vlaworks generate --segmentation` or choose --backend classical."
            )
        return Segmentation(np.asarray(request.truth, dtype=bool), 1.0)


def make_segmenter(spec: str, device: str = "cpu") -> Segmenter:
    """Build the backend named by ``spec`` (see the module docstring)."""
    from vlaworks.annotate import classical, hf

    if spec == "oracle":
        return OracleSegmenter()
    if spec == "classical":
        return classical.ClassicalSegmenter()
    head, sep, sam = spec.partition("+")
    if not sep and head.startswith("sam:") and len(head) > 4:
        return hf.SamSegmenter(head[4:], device=device)
    kind, _, path = head.partition(":")
    if sep and sam.startswith("sam:") and len(sam) > 4 and kind in hf.DETECTORS and path:
        return hf.DetectorSamSegmenter(kind, path, sam[4:], device=device)
    raise ValueError(
        f"Unknown --backend {spec!r}; choose oracle, classical, sam:PATH, owlv2:PATH+sam:PATH or "
        "grounding-dino:PATH+sam:PATH (PATH: a folder saved with save_pretrained)."
    )
