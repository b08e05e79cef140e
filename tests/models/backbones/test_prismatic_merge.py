"""Prismatic patch merger (``token_merge``): fewer LM image tokens, same towers, saved and reloaded."""

from __future__ import annotations

import pytest
import torch

from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.families.prismatic import merge_patches


def test_merge_patches_concatenates_each_block_row_major() -> None:
    # 4 x 4 grid, one channel holding the patch index
    tokens = torch.arange(16.0).view(1, 16, 1)
    merged = merge_patches(tokens, 2)
    assert merged.shape == (1, 4, 4)
    assert merged[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]


def test_merged_backbone_reads_k_squared_fewer_image_tokens(tmp_path) -> None:
    torch.manual_seed(0)
    plain = build_backbone("prismatic-tiny", image_size=32, patch_size=8)
    torch.manual_seed(0)
    merged = build_backbone("prismatic-tiny", image_size=32, patch_size=8, token_merge=2).eval()
    images = torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8)
    out_plain = plain(images, ["pick up the cube"] * 2)
    out = merged(images, ["pick up the cube"] * 2)
    assert out_plain.image_features.shape[1] == 2 * 16 and out.image_features.shape[1] == 2 * 4
    assert out.hidden.shape[1] == out_plain.hidden.shape[1] - 2 * 12
    merged.save_pretrained(str(tmp_path / "vlm"))
    again = build_backbone(str(tmp_path / "vlm")).eval()
    torch.testing.assert_close(again(images, ["pick up the cube"] * 2).hidden, out.hidden)


def test_merge_must_divide_the_patch_grid() -> None:
    with pytest.raises(ValueError, match="token_merge"):
        build_backbone("prismatic-tiny", image_size=24, patch_size=8, token_merge=2)
