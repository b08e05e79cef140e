"""PixelVLA's multiscale pixel-aware encoder (Eq. 3): masked averages, Γ^i + MLP, the block."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.tokens import build_token_source
from vlaworks.models.tokens.pixel_aware import PIXEL_BLOCK, PixelAwareTokens, masked_average


class _LevelBackbone:
    """What the source reads of a backbone: its width and fixed per-level features."""

    def __init__(self, levels: list[torch.Tensor], hidden_size: int = 4) -> None:
        self.levels = levels
        self.hidden_size = hidden_size
        self.asked: list[tuple[int, ...]] = []

    def vision_level_dims(self) -> tuple[int, ...]:
        return tuple(f.shape[2] for f in self.levels)

    def vision_levels(self, images: torch.Tensor, levels) -> list[torch.Tensor]:
        self.asked.append(tuple(levels))
        return [self.levels[i] for i in levels]


def test_masked_average_by_hand() -> None:
    # a 2 x 2 feature grid under a 4 x 4 mask: the mask covers the top-left cell (4 px)
    # and half of the top-right cell (2 px)
    features = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).expand(1, 1, 1, 2, 2).clone()
    features = torch.cat([features, 10 * features], dim=2)  # C = 2
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, :2, :2] = True
    mask[0, 0, :2, 2] = True
    expected = torch.tensor([(4 * 1.0 + 2 * 3.0) / 6, (4 * 10.0 + 2 * 30.0) / 6])
    torch.testing.assert_close(masked_average(features, mask)[0, 0], expected)
    # the pixel-level form of Eq. 3: features repeated over their cells, p . f / |p|
    upsampled = features.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)
    pixel_level = (upsampled * mask[:, :, None]).sum((-1, -2)) / mask.sum()
    torch.testing.assert_close(masked_average(features, mask), pixel_level)


def test_empty_mask_averages_to_zero() -> None:
    features = torch.randn(2, 3, 5, 4, 4)
    mask = torch.zeros(2, 3, 8, 8, dtype=torch.bool)
    mask[1, 2, 0, 0] = True
    out = masked_average(features, mask)
    assert torch.equal(out[0], torch.zeros(3, 5)) and torch.equal(out[1, :2], torch.zeros(2, 5))
    torch.testing.assert_close(out[1, 2], features[1, 2, :, 0, 0])


def test_eq3_sums_level_projections_then_mlp() -> None:
    torch.manual_seed(0)
    levels = [torch.randn(2, 1, 3, 4, 4), torch.randn(2, 1, 5, 2, 2)]  # two grids, two widths
    backbone = _LevelBackbone(levels)
    source = PixelAwareTokens(backbone.vision_level_dims(), (0, -1), hidden_size=4, mlp_width=6)
    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[0, 0, 2:6, 0:4] = True
    masks[1, 0, 4:, 4:] = True
    batch = Batch(
        images=torch.zeros(2, 1, 3, 8, 8, dtype=torch.uint8), instructions=["a", "b"], pixel_masks=masks
    )
    (block,) = source.tokens(batch, backbone)
    assert block.name == PIXEL_BLOCK and block.embeds.shape == (2, 1, 4) and block.attention == "causal"
    assert backbone.asked == [(0, 1)]
    summed = sum(g(masked_average(f, masks)) for g, f in zip(source.gammas, levels, strict=True))
    torch.testing.assert_close(block.embeds, source.mlp(summed))
    block.embeds.sum().backward()
    assert all(g.weight.grad.abs().sum() > 0 for g in source.gammas)


def test_missing_masks_and_levels_are_clear_errors(fake_backbone) -> None:
    source = PixelAwareTokens((3,), (0,), hidden_size=4, mlp_width=4)
    batch = Batch(images=torch.zeros(1, 1, 3, 8, 8, dtype=torch.uint8), instructions=["a"])
    with pytest.raises(ValueError, match="needs batch.pixel_masks; set policy.prompt_mode"):
        source.tokens(batch, _LevelBackbone([torch.zeros(1, 1, 3, 2, 2)]))
    with pytest.raises(ValueError, match="do not index this tower's 3 levels"):
        PixelAwareTokens((3, 3, 3), (3,), hidden_size=4, mlp_width=4)
    config = PolicyConfig(
        backbone="fake",
        head=PartSpec("resnet_decoder"),
        chunk_size=2,
        token_sources=[PartSpec("pixel_aware")],
        prompt_mode="mixed",
    )
    with pytest.raises(ValueError, match="does not expose per-level vision features"):
        build_token_source(PartSpec("pixel_aware"), fake_backbone, config)
