"""VLM4VLA query-MLP head: loss values, masking, gripper decoding, query gradients."""

from __future__ import annotations

import math

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.heads.query_mlp import (
    QUERY_BLOCK,
    QueryMLPHead,
    QueryMLPOptions,
    action_loss,
    gripper_to_sign,
)


def _batch(b: int = 2, t: int = 3, mask: torch.Tensor | None = None) -> Batch:
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(b, t, 7, generator=g) * 2 - 1
    return Batch(
        images=torch.randint(0, 256, (b, 1, 3, 16, 16), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "stack"][:b],
        actions=actions,
        action_mask=mask,
    )


def test_paper_mlp_shapes() -> None:
    head = QueryMLPHead(64, 4, options=QueryMLPOptions(mlp_width=1024))
    widths = [(m.in_features, m.out_features) for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert widths == [(64, 32), (32, 1024), (1024, 28)]
    assert isinstance(head.mlp[1], torch.nn.ReLU)
    assert QueryMLPHead(64, 4, options=QueryMLPOptions(mlp_width=16)).mlp[2].out_features == 16
    wide = QueryMLPHead(64, 4, options=QueryMLPOptions(first_width=256))
    assert [(m.in_features, m.out_features) for m in wide.mlp if isinstance(m, torch.nn.Linear)][:2] == [
        (64, 256), (256, 1024)
    ]
    with pytest.raises(ValueError, match="first_width must be >= 1"):
        QueryMLPOptions(first_width=0)


def test_loss_matches_hand_computation() -> None:
    pred = torch.zeros(1, 1, 7)
    pred[0, 0, :6] = torch.tensor([0.5, -2.0, 0.0, 0.0, 0.0, 0.0])
    pred[0, 0, 6] = 2.0  # gripper logit
    target = torch.zeros(1, 1, 7)
    target[0, 0, 6] = -1.0  # open -> BCE label 0
    loss, metrics = action_loss(pred, target, torch.ones(1, 1))
    huber = (0.5 * 0.5**2 + (2.0 - 0.5)) / 6  # quadratic below delta=1, linear above
    bce = math.log1p(math.exp(2.0))  # -log(1 - sigmoid(2))
    assert loss.item() == pytest.approx(huber + bce, rel=1e-5)
    assert metrics["loss_pose"] == pytest.approx(huber, rel=1e-5)
    assert metrics["loss_gripper"] == pytest.approx(bce, rel=1e-5)
    assert metrics["gripper_acc"] == 0.0
    assert metrics["l1_translation"] == pytest.approx(2.5 / 3, rel=1e-5)
    assert metrics["l1_rotation"] == 0.0


def test_action_mask_ignores_padded_steps() -> None:
    pred = torch.zeros(1, 2, 7)
    target = torch.zeros(1, 2, 7)
    target[0, 0, 6] = 1.0
    target[0, 1] = 50.0  # padding garbage past the episode end
    mask = torch.tensor([[True, False]]).float()
    masked, _ = action_loss(pred, target, mask)
    only_first, _ = action_loss(pred[:, :1], target[:, :1], torch.ones(1, 1))
    assert masked.item() == pytest.approx(only_first.item())


def test_gripper_sign_decoding() -> None:
    raw = torch.tensor([[[0.3] * 6 + [2.0], [0.1] * 6 + [-0.5], [0.0] * 6 + [0.0]]])
    out = gripper_to_sign(raw)
    assert out[0, :, 6].tolist() == [1.0, -1.0, -1.0]
    assert torch.equal(out[..., :6], raw[..., :6])


def test_query_gets_gradient_through_backbone(fake_backbone) -> None:
    backbone = fake_backbone
    head = QueryMLPHead(32, 3, options=QueryMLPOptions(mlp_width=16))
    batch = _batch()
    blocks = head.extra_tokens(batch, backbone, training=True)
    assert [b.name for b in blocks] == [QUERY_BLOCK] and blocks[0].embeds.shape == (2, 1, 32)
    out = backbone(batch.images, batch.instructions, blocks)
    loss, metrics = head.loss(out, batch)
    loss.backward()
    assert head.query.grad is not None and head.query.grad.abs().sum() > 0
    assert backbone.vision.weight.grad.abs().sum() > 0
    assert {"loss_pose", "loss_gripper", "l1_pose", "gripper_acc"} <= set(metrics)


def test_predict_returns_signed_gripper(fake_backbone) -> None:
    backbone = fake_backbone
    head = QueryMLPHead(32, 3, options=QueryMLPOptions(mlp_width=16))
    batch = _batch()
    chunk = head.predict(batch, backbone, [])
    assert chunk.shape == (2, 3, 7)
    assert set(chunk[..., 6].unique().tolist()) <= {-1.0, 1.0}


def test_chunk_mismatch_is_a_clear_error(fake_backbone) -> None:
    backbone = fake_backbone
    head = QueryMLPHead(32, 4, options=QueryMLPOptions(mlp_width=16))
    batch = _batch(t=3)
    out = backbone(batch.images, batch.instructions, head.extra_tokens(batch, backbone, training=True))
    with pytest.raises(ValueError, match="chunk size"):
        head.loss(out, batch)
