"""Per-level vision features (the pixel-aware encoder's input) from the backbones that expose them."""

from __future__ import annotations

import pytest
import torch

from vlaworks.models.backbones import build_backbone
from vlaworks.models.vision.levels import check_levels


def test_level_indices() -> None:
    assert check_levels((0, -1, -2), 3) == [0, 2, 1]
    with pytest.raises(ValueError, match="do not index"):
        check_levels((3,), 3)
    with pytest.raises(ValueError, match="do not index"):
        check_levels((), 3)


@pytest.mark.parametrize("name", ["prismatic-tiny", "paligemma-tiny"])
def test_siglip_levels_per_view(name: str, one_thread) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name, image_size=64, patch_size=8)
    assert backbone.vision_level_dims() == (64, 64, 64)  # patch embeddings + 2 layers
    images = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    first, last = backbone.vision_levels(images, (0, -1))
    assert first.shape == last.shape == (2, 3, 64, 8, 8)
    alone = backbone.vision_levels(images[1:, 2:], (-1,))[0]
    torch.testing.assert_close(alone[0, 0], last[1, 2], atol=1e-5, rtol=1e-5)  # row / view order kept
    assert not torch.equal(first, last)


def test_families_without_levels_say_so() -> None:
    backbone = build_backbone("qwen2.5-vl-tiny")
    with pytest.raises(ValueError, match="does not expose per-level vision features"):
        backbone.vision_level_dims()
    dual = build_backbone("prismatic-tiny", image_size=64, patch_size=8)
    from vlaworks.models.vision.dual import make_dual_encoder

    make_dual_encoder(dual)
    with pytest.raises(ValueError, match="without dual_encoder"):
        dual.vision_level_dims()
