"""PixelVLA's continuous action decoder: query block, shapes, L1 loss and its gradient."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.heads.resnet_decoder import (
    QUERY_BLOCK,
    ResidualBlock,
    ResNetDecoderHead,
    ResNetDecoderOptions,
)


def _batch(b: int = 2, t: int = 4, mask: torch.Tensor | None = None) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        images=torch.randint(0, 256, (b, 1, 3, 16, 16), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "stack"][:b],
        actions=torch.rand(b, t, 7, generator=g) * 2 - 1,
        action_mask=mask,
    )


def test_paper_layers_and_shapes(fake_backbone) -> None:
    head = ResNetDecoderHead(32, 4, options=ResNetDecoderOptions(blocks=3, width=24))
    assert (head.proj.in_features, head.proj.out_features) == (32, 24)
    assert len(head.blocks) == 3 and all(isinstance(b, ResidualBlock) for b in head.blocks)
    assert head.out[-1].out_features == 7
    batch = _batch()
    (block,) = head.extra_tokens(batch, fake_backbone, training=True)
    assert (
        block.name == QUERY_BLOCK and block.embeds.shape == (2, 4, 32) and block.attention == "bidirectional"
    )
    out = fake_backbone(batch.images, batch.instructions, [block])
    assert head.decode(out).shape == (2, 4, 7)
    assert head.predict(batch, fake_backbone, []).shape == (2, 4, 7)


def test_l1_loss_and_gradient(fake_backbone) -> None:
    head = ResNetDecoderHead(32, 4)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    batch = _batch(mask=mask)
    out = fake_backbone(
        batch.images, batch.instructions, head.extra_tokens(batch, fake_backbone, training=True)
    )
    pred = head.decode(out)
    pred.retain_grad()
    head.decode = lambda _out: pred  # the same prediction, kept to read its gradient
    loss, metrics = head.loss(out, batch)
    err = (pred - batch.actions).abs()
    torch.testing.assert_close(loss, err[mask].mean())
    assert metrics["l1_gripper"] == pytest.approx(float(err[..., 6][mask].mean().detach()), rel=1e-5)
    loss.backward()
    expected = torch.sign(pred - batch.actions) * mask[..., None] / (mask.sum() * 7)
    torch.testing.assert_close(pred.grad, expected)
    assert head.queries.grad.abs().sum() > 0 and fake_backbone.block.q_proj.weight.grad is not None


def test_padding_steps_do_not_count(fake_backbone) -> None:
    head = ResNetDecoderHead(32, 4)
    mask = torch.tensor([[True, True, False, False]])
    batch = _batch(b=1, mask=mask)
    out = fake_backbone(
        batch.images, batch.instructions, head.extra_tokens(batch, fake_backbone, training=True)
    )
    loss, _ = head.loss(out, batch)
    batch.actions[0, 2:] = 50.0
    torch.testing.assert_close(head.loss(out, batch)[0], loss)
    with pytest.raises(ValueError, match="chunk size"):
        head.loss(out, _batch(b=1, t=3))
