"""PokeVLA's ``seg_mask`` loss: Eq. 4 on hand-made masks, per-view mask shapes and IoU
metrics, and the mask loss's gradient reaching the ``<SEG>`` token through the backbone."""

from __future__ import annotations

import math

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.aux.seg import (
    SegMaskLoss,
    SegMaskOptions,
    overlap,
    resize_masks,
    sigmoid_focal_loss,
    spatial_kl_loss,
)
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.policy import build_policy

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = 4  # conv features 4 x 4 -> masks 16 x 16


def _mask(size: int = 16) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[4:8, 2:10] = True  # 32 of 256 pixels
    return mask


def test_perfect_logits_give_near_zero_loss() -> None:
    target = _mask()
    logits = torch.where(target, 30.0, -30.0)
    assert float(sigmoid_focal_loss(logits, target).max()) < 1e-20
    kl, valid = spatial_kl_loss(logits[None], target[None])
    assert bool(valid.all()) and float(kl) < 1e-6


def test_zero_logits_give_the_known_values() -> None:
    target = _mask()
    focal = sigmoid_focal_loss(torch.zeros(16, 16), target)
    # p = 1/2 everywhere: CE = ln 2, (1 - p_t)^2 = 1/4, alpha_t = 0.25 on the mask, 0.75 off it
    expected = (32 * 0.25 + 224 * 0.75) * 0.25 * math.log(2) / 256
    assert float(focal.mean()) == pytest.approx(expected, rel=1e-6)
    # uniform prediction against uniform mass on 32 pixels: KL = ln(256 / 32)
    kl, _ = spatial_kl_loss(torch.zeros(1, 16, 16), target[None])
    assert float(kl) == pytest.approx(math.log(8), rel=1e-6)


def test_a_view_without_the_target_has_no_kl_term() -> None:
    targets = torch.stack([_mask(), torch.zeros(16, 16, dtype=torch.bool)])
    kl, valid = spatial_kl_loss(torch.randn(2, 16, 16), targets)
    assert valid.tolist() == [True, False] and float(kl[1]) == 0.0 and float(kl[0]) > 0


def test_resize_and_iou() -> None:
    big = _mask(32)
    big[:] = False
    big[8:16, 4:20] = True
    assert torch.equal(resize_masks(big[None, None], 16)[0, 0], _mask())
    logits = torch.where(_mask(), 1.0, -1.0)
    logits[4, 2:10] = -1.0  # miss one row of 8 pixels
    inter, union = overlap(logits, _mask())
    assert (int(inter), int(union)) == (24, 32)


def _config(**options) -> PolicyConfig:
    return PolicyConfig(
        backbone="fake",
        head=PartSpec("query_mlp"),
        chunk_size=2,
        cameras=("base", "wrist"),
        image_size=32,
        token_sources=[PartSpec("seg")],
        aux_losses=[PartSpec("seg_mask", {"grid": GRID, "width": 32, "heads": 2, **options})],
    )


def _batch(with_targets: bool = True) -> Batch:
    targets = torch.zeros(2, 2, 32, 32, dtype=torch.bool)
    targets[:, 0, 8:16, 4:20] = True  # the target is seen by the base view only
    return Batch(
        images=torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8),
        instructions=["pick the cube", "open the drawer"],
        camera_names=("base", "wrist"),
        actions=torch.zeros(2, 2, 7),
        target_masks=targets if with_targets else None,
    )


def test_masks_per_view_and_metrics(fake_backbones) -> None:
    torch.manual_seed(0)
    policy = build_policy(_config())
    (aux,) = policy.aux_losses
    assert isinstance(aux, SegMaskLoss) and aux.mask_size == 16 and aux.weight == 1.0
    batch = _batch()
    out = policy.backbone(batch.images, batch.instructions, policy.prefix(batch))
    coarse, fine = aux.masks(out, batch)
    assert coarse.shape == fine.shape == (2, 2, 16, 16)
    loss, metrics = policy(batch)
    assert torch.isfinite(loss)
    expected = {"focal_coarse", "kl_coarse", "focal_fine", "kl_fine"}
    assert expected <= {k.removeprefix("seg_mask/") for k in metrics}
    assert "seg_mask/iou_coarse_base" in metrics and "seg_mask/iou_fine_base" in metrics
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if "/iou_" in k)
    aux_loss, aux_metrics = aux.loss(out, batch)
    weights = aux.options
    recomputed = sum(
        weights.focal_weight * aux_metrics[f"focal_{s}"] + weights.kl_weight * aux_metrics[f"kl_{s}"]
        for s in ("coarse", "fine")
    )
    assert float(aux_loss.detach()) == pytest.approx(recomputed, rel=1e-5)


def test_mask_loss_gradient_reaches_the_seg_token_through_the_backbone(fake_backbones) -> None:
    torch.manual_seed(0)
    policy = build_policy(_config())
    (aux,) = policy.aux_losses
    batch = _batch()
    out = policy.backbone(batch.images, batch.instructions, policy.prefix(batch))
    loss, _ = aux.loss(out, batch)
    loss.backward()
    seg = policy.token_sources[0].embedding
    assert seg.grad is not None and seg.grad.abs().sum() > 0  # the backbone input
    assert policy.backbone.block.q_proj.weight.grad.abs().sum() > 0  # through the LM
    assert aux.decoder.image_encoder.net[0].weight.grad.abs().sum() > 0  # the conv encoder trains
    assert all(p.grad is None for p in policy.head.parameters())


def test_configuration_errors_are_clear(fake_backbones) -> None:
    config = _config()
    config.token_sources = []
    with pytest.raises(ValueError, match=r"add \{\"type\": \"seg\"\} to policy.token_sources"):
        build_policy(config)
    policy = build_policy(_config())
    with pytest.raises(ValueError, match="vlaworks generate --segmentation"):
        policy(_batch(with_targets=False))
    with pytest.raises(ValueError, match="set sam_path exactly when encoder='sam'"):
        SegMaskOptions(encoder="sam")
    with pytest.raises(ValueError, match="Option 'encoder'"):
        _config(encoder="vit")


def test_the_recipe_switch_trains_two_steps_and_predicts_without_masks(train_switch) -> None:
    """The documented ``--set`` pair on vlm4vla+proprio, on a generated dataset with segmentation."""
    overrides = {
        "policy.token_sources": [{"type": "proprio"}, {"type": "seg"}],
        "policy.aux_losses": [{"type": "seg_mask", "options": {"grid": 4, "width": 32, "heads": 2}}],
    }
    _, run, policy, obs = train_switch(overrides, "spatial", "fixed")
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"seg_mask/loss", "seg_mask/iou_fine_base", "loss_pose"} <= set(header)
    assert policy.processor.reads_target_masks
    assert policy.predict_chunk([obs]).shape == (1, 4, 7)
