"""The plain CNN trunk of ``bc-cnn``: keypoints, the causal bag of extra blocks, save/reload."""

from __future__ import annotations

import pytest
import torch

from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.base import ExtraTokens
from vlaworks.models.backbones.families.cnn import SpatialSoftmax


def test_spatial_softmax_finds_the_peak() -> None:
    x = torch.full((1, 1, 5, 5), -1e4)
    x[0, 0, 1, 4] = 0.0  # row 1 (y = -0.5), column 4 (x = 1)
    torch.testing.assert_close(SpatialSoftmax()(x), torch.tensor([[1.0, -0.5]]))


def test_query_sees_the_blocks_before_it_and_gradients_reach_the_encoders(tmp_path) -> None:
    torch.manual_seed(0)
    m = build_backbone("cnn", views=2, hidden_size=16)
    images = torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8)
    state = torch.randn(2, 1, 16, requires_grad=True)
    query = torch.randn(1, 1, 16).expand(2, 1, 16)
    out = m(images, ["pick up the cube", "push the bowl"],
            [ExtraTokens("proprio", embeds=state), ExtraTokens("q", embeds=query)])
    assert out.hidden.shape == (2, 2, 16) and out.spans["q"] == slice(1, 2)
    out.hidden[:, out.spans["q"]].square().sum().backward()
    assert state.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.encoders.parameters())
    other = m(images, ["pick up the cube"] * 2, [ExtraTokens("q", embeds=query)])
    assert not torch.allclose(other.hidden[1], out.hidden[1, 1:]), "the instruction must matter"
    m.save_pretrained(str(tmp_path / "cnn"))
    again = build_backbone(str(tmp_path / "cnn"))
    torch.testing.assert_close(again(images, ["a", "b"], [ExtraTokens("q", embeds=query)]).hidden,
                               m(images, ["a", "b"], [ExtraTokens("q", embeds=query)]).hidden)


def test_wrong_view_count_and_lm_use_are_clear_errors() -> None:
    m = build_backbone("cnn", views=2, hidden_size=8)
    with pytest.raises(ValueError, match="views"):
        m(torch.zeros(1, 1, 3, 16, 16, dtype=torch.uint8), ["x"])
    with pytest.raises(ValueError, match="token heads"):
        m.lm_logits(torch.zeros(1, 8))
