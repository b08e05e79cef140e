"""Dual (frozen ⊕ trained) vision encoder on prismatic-tiny and paligemma-tiny."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.backbones import build_backbone
from vlaworks.models.checkpoint import load_policy, save_policy
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.policy import build_policy, set_trainable
from vlaworks.models.vision.dual import DualVision, is_dual, make_dual_encoder
from vlaworks.train.optim import build_optimizer

SIZE = 32
BACKBONES = ("prismatic-tiny", "paligemma-tiny")


pytestmark = pytest.mark.usefixtures("one_thread")


def config(backbone: str, **changes) -> PolicyConfig:
    return PolicyConfig(
        backbone=backbone,
        head=PartSpec("query_mlp", {"mlp_width": 32}),
        chunk_size=2,
        image_size=SIZE,
        backbone_options={"dual_encoder": True, "image_size": SIZE},
        **changes,
    )


def batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        images=torch.randint(0, 256, (2, 1, 3, SIZE, SIZE), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "open the drawer"],
        actions=torch.rand((2, 2, 7), generator=g) * 2 - 1,
    )


def dual_module(policy) -> DualVision:
    return next(m for m in policy.backbone.modules() if isinstance(m, DualVision))


@pytest.mark.parametrize("name", BACKBONES)
def test_dual_encoder_keeps_the_backbone_output_at_init(name: str) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name, image_size=SIZE).eval()
    images = batch().images
    before, _ = backbone.encode_images(images)
    make_dual_encoder(backbone)
    after, _ = backbone.encode_images(images)
    assert is_dual(backbone)
    assert torch.allclose(before, after, atol=1e-5)
    with pytest.raises(ValueError, match="already dual"):
        make_dual_encoder(backbone)


@pytest.mark.parametrize("name", BACKBONES)
def test_frozen_copy_never_trains(name: str) -> None:
    torch.manual_seed(0)
    policy = build_policy(config(name))
    dual = dual_module(policy)
    frozen_before = {k: v.clone() for k, v in dual.frozen.state_dict().items()}
    trained_before = {k: v.clone() for k, v in dual.trained.state_dict().items()}
    optimizer = build_optimizer(policy, lr=1e-3, weight_decay=0.0)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in in_optimizer for p in dual.frozen.parameters())
    assert all(id(p) in in_optimizer for p in dual.trained.parameters())
    for _ in range(3):
        policy.train()
        assert not dual.frozen.training and dual.trained.training
        loss, _ = policy(batch())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    frozen_after, trained_after = dual.frozen.state_dict(), dual.trained.state_dict()
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    assert any(not torch.equal(trained_before[k], trained_after[k]) for k in trained_before)
    set_trainable(policy)  # re-applying the switches (a new stage) keeps the copy frozen
    assert not any(p.requires_grad for p in dual.frozen.parameters())


def test_freeze_vision_freezes_both_copies() -> None:
    policy = build_policy(config("prismatic-tiny", freeze_vision=True))
    dual = dual_module(policy)
    assert not any(p.requires_grad for p in dual.parameters())
    assert policy.backbone.projector[0].weight.requires_grad


@pytest.mark.parametrize("name", BACKBONES)
def test_save_load_round_trip(name: str, tmp_path, normalizer) -> None:
    torch.manual_seed(0)
    policy = build_policy(config(name), normalizer)
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.1)
    loss, _ = policy(batch())
    loss.backward()
    optimizer.step()  # trained copy now differs from the frozen one
    policy.eval()
    expected = policy.predict(batch())
    loaded = load_policy(save_policy(policy, tmp_path / "ckpt"))
    assert is_dual(loaded.backbone)
    assert torch.allclose(loaded.predict(batch()), expected, atol=1e-5)
    assert not any(p.requires_grad for p in dual_module(loaded).frozen.parameters())


def test_unsupported_backbone_is_named() -> None:
    with pytest.raises(ValueError, match="Prismatic and PaliGemma"):
        build_policy(config("qwen2.5-vl-tiny"))


def test_lora_leaves_the_frozen_copy_frozen_and_adapter_free() -> None:
    from vlaworks.models.config import LoraOptions

    policy = build_policy(config("prismatic-tiny", lora=LoraOptions(enabled=True, r=4, alpha=8)))
    dual = dual_module(policy)
    assert not any("lora_" in name for name, _ in dual.named_parameters())
    assert not any(p.requires_grad for p in dual.frozen.parameters())
    assert all(p.requires_grad for p in dual.trained.parameters())
    loss, _ = policy(batch())
    loss.backward()
    assert all(p.grad is None for p in dual.frozen.parameters())
