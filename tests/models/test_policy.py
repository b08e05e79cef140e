"""Policy core: forward / backward / predict, env observations -> raw chunks, trainability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.config import LoraOptions, PartSpec, PolicyConfig
from vlaworks.models.policy import VLAPolicy, build_policy, count_parameters, set_trainable
from vlaworks.policy_api import ChunkPolicy

pytestmark = pytest.mark.usefixtures("fake_backbones")


def _config(**overrides) -> PolicyConfig:
    base = dict(
        backbone="fake",
        backbone_options={"hidden": 32},
        head=PartSpec("query_mlp", {"mlp_width": 16}),
        chunk_size=3,
        image_size=16,
    )
    base.update(overrides)
    return PolicyConfig(**base)


def _batch(b: int = 2, views: int = 1, state: bool = False) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(
        images=torch.randint(0, 256, (b, views, 3, 16, 16), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "put the cube in the bowl"][:b],
        camera_names=("base", "wrist")[:views],
        state=torch.randn(b, 8, generator=g) if state else None,
        actions=torch.rand(b, 3, 7, generator=g) * 2 - 1,
    )


def _observation(size: int = 24) -> dict:
    rng = np.random.default_rng(0)
    return {
        "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in ("base", "wrist")},
        "state": rng.standard_normal(8).astype(np.float32),
        "instruction": "pick up the red cube",
    }


def test_forward_backward_and_predict() -> None:
    policy = build_policy(_config())
    loss, metrics = policy(_batch())
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert metrics["loss"] == pytest.approx(loss.item())
    loss.backward()
    assert policy.head.query.grad.abs().sum() > 0
    assert all(p.grad is not None for p in policy.backbone.block.parameters())
    chunk = policy.predict(_batch())
    assert chunk.shape == (2, 3, 7)


def test_training_reduces_loss_on_one_batch() -> None:
    torch.manual_seed(0)
    policy = build_policy(_config())
    batch = _batch()
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first = policy(batch)[0].item()
    for _ in range(30):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_predict_chunk_from_env_observations(normalizer) -> None:
    policy = build_policy(_config(cameras=("base", "wrist")), normalizer=normalizer)
    assert isinstance(policy, ChunkPolicy)
    policy.reset()
    chunk = policy.predict_chunk([_observation(), _observation()])
    assert chunk.shape == (2, 3, 7) and chunk.dtype == np.float32
    normalised = policy.predict(policy.processor.batch([_observation()]))
    expected = normalizer.unnormalize("action", normalised).numpy()
    np.testing.assert_allclose(chunk[:1], expected, rtol=1e-5, atol=1e-6)
    assert policy.training  # predict_chunk restores the mode it found


def test_observation_with_missing_camera_is_a_clear_error(normalizer) -> None:
    policy = build_policy(_config(cameras=("base", "side")), normalizer=normalizer)
    with pytest.raises(KeyError, match="side"):
        policy.predict_chunk([_observation()])


def test_predict_chunk_without_normaliser_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="normaliser"):
        build_policy(_config()).predict_chunk([_observation()])


def test_batch_camera_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cameras"):
        build_policy(_config())(_batch(views=2))


def test_proprio_token_source_feeds_state(normalizer) -> None:
    config = _config(use_state=True, state_dim=8, token_sources=[PartSpec("proprio")])
    policy = build_policy(config, normalizer=normalizer)
    loss, _ = policy(_batch(state=True))
    loss.backward()
    assert policy.token_sources[0].proj.weight.grad.abs().sum() > 0
    batch = policy.processor.batch([_observation()])
    assert batch.state.shape == (1, 8)


def _trainable(policy: VLAPolicy, module: torch.nn.Module) -> set[bool]:
    return {p.requires_grad for p in module.parameters()}


def test_full_finetune_trains_everything() -> None:
    policy = build_policy(_config())
    assert count_parameters(policy)["trainable"] == count_parameters(policy)["total"]


def test_freeze_vision_and_word_embeddings() -> None:
    policy = build_policy(_config(freeze_vision=True, freeze_word_embeddings=True))
    assert _trainable(policy, policy.backbone.vision) == {False}
    assert _trainable(policy, policy.backbone.embed) == {False}
    assert _trainable(policy, policy.backbone.block) == {True}
    assert policy.head.query.requires_grad  # the <ActionQuery> lives in the head
    assert _trainable(policy, policy.head) == {True}


def test_freeze_backbone_keeps_head_trainable() -> None:
    policy = build_policy(_config(freeze_backbone=True))
    assert _trainable(policy, policy.backbone) == {False}
    assert _trainable(policy, policy.head) == {True}


def test_lora_adapts_lm_linears_only() -> None:
    lora = LoraOptions(enabled=True, r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    policy = build_policy(_config(lora=lora))
    trainable = {n for n, p in policy.backbone.named_parameters() if p.requires_grad}
    assert any("q_proj.lora_A" in n for n in trainable) and any("v_proj.lora_B" in n for n in trainable)
    assert not any("k_proj" in n for n in trainable)
    assert not any(n.endswith("base_layer.weight") for n in trainable)
    assert "embed.weight" not in trainable
    assert {"vision.weight", "vision.bias"} <= trainable  # vision follows freeze_vision
    assert _trainable(policy, policy.head) == {True}
    loss, _ = policy(_batch())
    loss.backward()
    assert policy.backbone.block.q_proj.lora_B.default.weight.grad is not None
    policy.config.freeze_vision = True
    set_trainable(policy)
    assert _trainable(policy, policy.backbone.vision) == {False}

    plain = build_policy(_config())
    plain.config.lora.enabled = True
    with pytest.raises(ValueError, match="inject_lora"):
        set_trainable(plain)


def test_lora_without_matching_layers_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="LoRA targets"):
        build_policy(_config(lora=LoraOptions(enabled=True, target_modules=("qkv",))))


def test_from_scratch_reinitialises_backbone() -> None:
    pretrained = build_policy(_config())
    torch.manual_seed(123)
    scratch = build_policy(_config(from_scratch=True))
    assert not torch.equal(pretrained.backbone.block.q_proj.weight, scratch.backbone.block.q_proj.weight)
    assert not torch.equal(pretrained.backbone.vision.weight, scratch.backbone.vision.weight)


TINY_BACKBONES = ["prismatic-tiny", "qwen2.5-vl-tiny", "paligemma-tiny", "kosmos2-tiny"]


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_tiny_backbones_train_predict_and_reload(backbone, normalizer, tmp_path) -> None:
    from vlaworks.models.checkpoint import load_policy, save_policy

    torch.manual_seed(0)
    config = _config(backbone=backbone, backbone_options={}, image_size=32)
    policy = build_policy(config, normalizer)
    loss, metrics = policy(_batch())
    loss.backward()
    assert torch.isfinite(loss) and 0.0 <= metrics["gripper_acc"] <= 1.0
    assert policy.head.query.grad.abs().sum() > 0
    vision_grads = [p.grad for m in policy.backbone.vision_modules() for p in m.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in vision_grads)
    policy.eval()
    before = policy.predict_chunk([_observation()])
    assert before.shape == (1, 3, 7)
    loaded = load_policy(save_policy(policy, tmp_path / backbone))
    np.testing.assert_array_equal(loaded.predict_chunk([_observation()]), before)


@pytest.mark.parametrize("backbone", TINY_BACKBONES)
def test_tiny_backbones_freezing_lora_and_scratch(backbone) -> None:
    lora = LoraOptions(enabled=True, r=2, alpha=4)
    policy = build_policy(_config(backbone=backbone, backbone_options={}, lora=lora, freeze_vision=True))
    for module in policy.backbone.vision_modules():
        assert _trainable(policy, module) == {False}
    assert not policy.backbone.input_embeddings().weight.requires_grad
    trainable = [n for n, p in policy.backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert _trainable(policy, policy.head) == {True}
    torch.manual_seed(0)
    pretrained = build_policy(_config(backbone=backbone, backbone_options={}))
    torch.manual_seed(0)
    scratch = build_policy(_config(backbone=backbone, backbone_options={}, from_scratch=True))
    before, after = pretrained.backbone.state_dict(), scratch.backbone.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert len(changed) > len(before) // 3
