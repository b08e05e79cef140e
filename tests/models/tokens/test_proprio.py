"""Proprio token source: state -> one token of the backbone's width."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.tokens import TOKEN_SOURCES, build_token_source
from vlaworks.models.tokens.proprio import PROPRIO_BLOCK, ProprioTokens


class _Width:
    """What the proprio source reads of a backbone: its width."""

    def __init__(self, hidden_size: int) -> None:
        self.hidden_size = hidden_size


def _batch(state: torch.Tensor | None) -> Batch:
    return Batch(images=torch.zeros(2, 1, 3, 8, 8, dtype=torch.uint8), instructions=["a", "b"], state=state)


def test_one_token_per_sample_with_gradient() -> None:
    source = ProprioTokens(state_dim=5, hidden_size=12)
    state = torch.randn(2, 5)
    (block,) = source.tokens(_batch(state), _Width(12))
    assert block.name == PROPRIO_BLOCK and block.embeds.shape == (2, 1, 12) and block.attention == "causal"
    torch.testing.assert_close(block.embeds[:, 0], source.proj(state))
    block.embeds.sum().backward()
    assert source.proj.weight.grad.abs().sum() > 0


def test_oft_mlp_projector(fake_backbone) -> None:
    """projector="mlp" is OFT's ProprioProjector: Linear(S, h) -> GELU -> Linear(h, h)."""
    config = PolicyConfig(
        backbone="fake", head=PartSpec("query_mlp"), chunk_size=2, use_state=True, state_dim=5
    )
    source = build_token_source(PartSpec("proprio", {"projector": "mlp"}), fake_backbone, config)
    fc1, act, fc2 = source.proj
    assert (fc1.in_features, fc1.out_features, fc2.out_features) == (5, 32, 32)
    assert isinstance(act, torch.nn.GELU)
    state = torch.randn(2, 5)
    (block,) = source.tokens(_batch(state), _Width(32))
    torch.testing.assert_close(block.embeds[:, 0], fc2(torch.nn.functional.gelu(fc1(state))))
    block.embeds.sum().backward()
    assert fc1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="Option 'projector'.*one of 'linear', 'mlp'"):
        build_token_source(PartSpec("proprio", {"projector": "deep"}), fake_backbone, config)


def test_bad_state_is_a_clear_error() -> None:
    source = ProprioTokens(state_dim=5, hidden_size=12)
    with pytest.raises(ValueError, match="needs batch.state"):
        source.tokens(_batch(None), _Width(12))
    with pytest.raises(ValueError, match=r"expects state \[B, 5\]"):
        source.tokens(_batch(torch.randn(2, 4)), _Width(12))


def test_registry_builds_from_config(fake_backbone) -> None:
    config = PolicyConfig(
        backbone="fake", head=PartSpec("query_mlp"), chunk_size=2, use_state=True, state_dim=5
    )
    source = build_token_source(PartSpec("proprio"), fake_backbone, config)
    assert source.proj.out_features == fake_backbone.hidden_size
    no_state = PolicyConfig(backbone="fake", head=PartSpec("query_mlp"), chunk_size=2)
    with pytest.raises(ValueError, match="use_state"):
        build_token_source(PartSpec("proprio"), fake_backbone, no_state)
    with pytest.raises(KeyError, match="Unknown token source 'propio'; did you mean 'proprio'"):
        TOKEN_SOURCES.resolve("propio")
