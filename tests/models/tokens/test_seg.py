"""The ``<SEG>`` token source: one learned causal embedding per row, block "seg"."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.tokens import build_token_source
from vlaworks.models.tokens.seg import SEG_BLOCK, SegToken


def test_one_shared_learned_token_per_row(fake_backbone) -> None:
    config = PolicyConfig(backbone="fake", head=PartSpec("query_mlp"), chunk_size=2)
    source = build_token_source(PartSpec("seg", {"init_std": 0.5}), fake_backbone, config)
    assert isinstance(source, SegToken) and source.embedding.shape == (1, 1, 32)
    batch = Batch(images=torch.zeros(3, 1, 3, 8, 8, dtype=torch.uint8), instructions=["a", "b", "c"])
    (block,) = source.tokens(batch, fake_backbone)
    assert block.name == SEG_BLOCK and block.attention == "causal" and block.embeds.shape == (3, 1, 32)
    assert torch.equal(block.embeds[0], block.embeds[2])
    block.embeds.sum().backward()
    assert torch.equal(source.embedding.grad, torch.full((1, 1, 32), 3.0))


def test_bad_options_are_clear_errors(fake_backbone) -> None:
    config = PolicyConfig(backbone="fake", head=PartSpec("query_mlp"), chunk_size=2)
    with pytest.raises(ValueError, match="init_std must be > 0"):
        build_token_source(PartSpec("seg", {"init_std": 0.0}), fake_backbone, config)
    with pytest.raises(ValueError, match="Unknown option 'std'"):
        build_token_source(PartSpec("seg", {"std": 0.1}), fake_backbone, config)
