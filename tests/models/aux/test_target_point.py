"""The ``target_point`` grounding loss: hand-computed centroids, the loss and its metrics on a
known prediction, its gradient reaching the backbone through the head's block, and a clear
error without masks or with a wrong block."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.eval.masks import point_error
from vlaworks.models.aux.point import TargetPointLoss, mask_centroids
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.policy import build_policy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_centroids_of_hand_made_masks() -> None:
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = True  # the top-left pixel's centre: (-0.75, -0.75)
    masks[1, 1:3, 2:4] = True  # columns 2-3 (x 0.25, 0.75), rows 1-2 (y -0.25, 0.25)
    centre, visible = mask_centroids(masks)
    assert visible.tolist() == [True, True, False]
    assert torch.allclose(centre[0], torch.tensor([-0.75, -0.75]))
    assert torch.allclose(centre[1], torch.tensor([0.5, 0.0]))
    assert torch.equal(centre[2], torch.zeros(2))


def _config(**options) -> PolicyConfig:
    return PolicyConfig(
        backbone="fake",
        head=PartSpec("query_mlp"),
        chunk_size=2,
        cameras=("base", "wrist"),
        image_size=32,
        aux_losses=[PartSpec("target_point", options)],
    )


def _batch(with_targets: bool = True) -> Batch:
    targets = torch.zeros(2, 2, 32, 32, dtype=torch.bool)
    targets[:, 0, 8:16, 0:8] = True  # seen by the base view only, centroid (-0.75, -0.25)
    return Batch(
        images=torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8),
        instructions=["pick the cube", "open the drawer"],
        camera_names=("base", "wrist"),
        actions=torch.zeros(2, 2, 7),
        target_masks=targets if with_targets else None,
    )


def test_loss_and_metrics_on_a_known_prediction(fake_backbones) -> None:
    torch.manual_seed(0)
    policy = build_policy(_config())
    (aux,) = policy.aux_losses
    assert isinstance(aux, TargetPointLoss)
    last = aux.projector[2]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():  # predict (0, 0) and visibility logit +2 in both views
        last.bias.copy_(torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0, 2.0]))
    batch = _batch()
    out = policy.encode(batch, training=True)
    loss, metrics = aux.loss(out, batch)
    # base view: |0 - (-0.75)| + |0 - (-0.25)| = 1.0, halved: 0.5; wrist unseen, no L1 term
    l1 = 0.5
    softplus = torch.nn.functional.softplus
    bce = (softplus(torch.tensor(-2.0)) + softplus(torch.tensor(2.0))) / 2  # seen base, unseen wrist
    assert metrics["l1"] == pytest.approx(l1)
    assert float(loss.detach()) == pytest.approx(l1 + 0.1 * float(bce), rel=1e-5)
    assert metrics["vis_acc"] == pytest.approx(0.5)
    assert metrics["l1_px_base"] == pytest.approx(l1 * 16)  # [-1, 1] spans 32 px
    assert "l1_px_wrist" not in metrics
    total, policy_metrics = policy(batch)
    assert torch.isfinite(total) and "target_point/l1" in policy_metrics


def test_gradient_reaches_the_backbone_through_the_heads_block(fake_backbones) -> None:
    torch.manual_seed(0)
    policy = build_policy(_config())
    (aux,) = policy.aux_losses
    batch = _batch()
    out = policy.encode(batch, training=True)
    loss, _ = aux.loss(out, batch)
    loss.backward()
    assert policy.backbone.block.q_proj.weight.grad.abs().sum() > 0
    assert policy.head.query.grad is not None and policy.head.query.grad.abs().sum() > 0


def test_errors_are_clear(fake_backbones) -> None:
    policy = build_policy(_config())
    assert policy.config.reads_target_masks
    with pytest.raises(ValueError, match="vlaworks generate --segmentation"):
        policy(_batch(with_targets=False))
    policy = build_policy(_config(block="nope"))
    with pytest.raises(KeyError, match="set its option block"):
        policy(_batch())
    with pytest.raises(ValueError, match="weight > 0"):
        build_policy(_config(weight=0.0))


def test_the_documented_switch_trains_on_generated_masks(train_switch) -> None:
    """README's ``--set`` on vlm4vla+proprio: the loader adds the masks, the metrics are logged,
    the saved policy predicts from observations without masks, and ``point_error`` scores it."""
    from vlaworks.data.lerobot import LeRobotDataset

    switch = {"policy.aux_losses": [{"type": "target_point"}]}
    data, run, policy, obs = train_switch(switch, "object", "random")
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"target_point/loss", "target_point/l1", "target_point/vis_acc", "loss_pose"} <= set(header)
    assert policy.predict_chunk([obs]).shape == (1, 4, 7)
    report = point_error(policy, data, every=8)
    assert report["frames"] == -(-LeRobotDataset(data).num_frames // 8)
    base = report["views"]["base"]
    assert base["visible"] > 0 and 0 <= base["l1_px"] <= 32 and 0 <= base["l1_px_centre"] <= 16
    assert all(0 <= view["vis_acc"] <= 1 for view in report["views"].values())
