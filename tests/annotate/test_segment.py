"""Segmentation backends: oracle, classical on a synthetic scene, HF loading paths."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.annotate.classical import ClassicalSegmenter, colour_name
from vlaworks.annotate.geometry import PixelBox
from vlaworks.annotate.hf import DetectorSamSegmenter, SamSegmenter
from vlaworks.annotate.pipeline import mask_iou
from vlaworks.annotate.segment import OracleSegmenter, SegmentRequest, make_segmenter


def _scene() -> tuple[SegmentRequest, np.ndarray]:
    """A textured brown table, a grey gripper, a red blob under it, a second red blob and a
    white plate further away (distractors), all inside the proposal."""
    rng = np.random.default_rng(0)
    image = np.empty((64, 64, 3), dtype=np.uint8)
    image[:] = (130, 98, 70)
    image = np.clip(image + rng.integers(-12, 13, size=(64, 64, 1)), 0, 255).astype(np.uint8)
    gripper = np.zeros((64, 64), dtype=bool)
    gripper[14:24, 24:36] = True
    image[gripper] = (90, 90, 95)
    rows, cols = np.mgrid[:64, :64]
    target = (rows - 28) ** 2 + (cols - 30) ** 2 <= 16
    image[target] = (205, 30, 25)
    image[(rows - 30) ** 2 + (cols - 46) ** 2 <= 9] = (215, 25, 30)
    image[(rows - 40) ** 2 + (cols - 18) ** 2 <= 16] = (240, 240, 235)
    request = SegmentRequest(image, "red cube", PixelBox(10, 8, 52, 48), gripper, truth=target)
    return request, target


def test_classical_finds_the_named_object_next_to_the_gripper():
    request, target = _scene()
    result = ClassicalSegmenter()(request)
    assert mask_iou(result.mask, target) > 0.9
    assert 0.5 < result.confidence <= 1.0


def test_classical_without_a_colour_word_uses_contrast_and_stays_in_the_proposal():
    request, _ = _scene()
    white = (np.mgrid[:64, :64][0] - 40) ** 2 + (np.mgrid[:64, :64][1] - 18) ** 2 <= 16
    plate = SegmentRequest(request.image, "white plate", request.proposal, request.gripper)
    assert mask_iou(ClassicalSegmenter()(plate).mask, white) > 0.9
    outside = SegmentRequest(request.image, "red cube", PixelBox(0, 50, 10, 64), request.gripper)
    assert not ClassicalSegmenter()(outside).mask.any()
    assert colour_name("big Grey bowl") == "gray" and colour_name("bowl") is None


def test_oracle_returns_the_truth_and_needs_it():
    request, target = _scene()
    result = OracleSegmenter()(request)
    assert mask_iou(result.mask, target) == 1.0 and result.confidence == 1.0
    blind = SegmentRequest(request.image, "red cube", request.proposal, request.gripper)
    with pytest.raises(ValueError, match="generate --segmentation"):
        OracleSegmenter()(blind)


@pytest.mark.parametrize("spec", ["sam", "sam:", "owlv2:x", "yolo:x+sam:y", "owlv2:x+sam:", "classic"])
def test_unknown_backends_name_the_choices(spec):
    with pytest.raises(ValueError, match="choose oracle, classical, sam:PATH"):
        make_segmenter(spec)


def test_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="No SAM checkpoint .* save_pretrained"):
        make_segmenter(f"sam:{tmp_path}")


def test_sam_loading_path_returns_a_mask_cut_to_the_proposal(tiny_sam):
    request, _ = _scene()
    segmenter = make_segmenter(f"sam:{tiny_sam}")
    assert isinstance(segmenter, SamSegmenter) and segmenter.name == f"sam:{tiny_sam}"
    result = segmenter(request)
    assert result.mask.shape == (64, 64) and result.mask.dtype == bool
    assert not result.mask[~request.proposal.region(64, 64)].any()
    assert 0.0 <= result.confidence <= 1.0
    wide = segmenter.segment_box(np.zeros((48, 64, 3), dtype=np.uint8), (4.0, 4.0, 40.0, 30.0))
    assert wide.mask.shape == (48, 64)  # masks come back at the input's size


@pytest.mark.parametrize("detector", ["owlv2", "grounding-dino"])
def test_detector_then_sam_loading_paths(detector, request, tiny_sam):
    folder = request.getfixturevalue("tiny_owlv2" if detector == "owlv2" else "tiny_grounding_dino")
    scene, _ = _scene()
    segmenter = make_segmenter(f"{detector}:{folder}+sam:{tiny_sam}")
    assert isinstance(segmenter, DetectorSamSegmenter)
    boxes, scores = segmenter.detect(scene.image, scene.phrase)
    assert boxes.shape[1] == 4 and len(boxes) == len(scores) > 0
    assert (boxes >= 0).all() and (boxes <= 64).all()
    result = segmenter(scene)
    assert result.mask.shape == (64, 64) and not result.mask[~scene.proposal.region(64, 64)].any()
    assert 0.0 <= result.confidence <= 1.0
