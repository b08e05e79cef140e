"""The ``openvla-oft`` recipe: OFT's LIBERO settings, and it trains and reloads through the
common pipeline."""

from __future__ import annotations

import numpy as np
import torch

from vlaworks.recipes import get_recipe, recipe_names
from vlaworks.recipes.openvla_oft import crop_shift


def test_defaults_follow_oft() -> None:
    recipe = get_recipe("openvla-oft")
    policy = recipe.policy
    assert recipe.name == "openvla-oft" and "openvla-oft" in recipe_names()
    assert (policy.backbone, policy.head.type, policy.chunk_size) == ("prismatic-tiny", "parallel_l1", 8)
    assert (policy.cameras, policy.image_size) == (("base", "wrist"), 224)
    assert policy.use_state and [(s.type, s.options) for s in policy.token_sources] == [
        ("proprio", {"projector": "mlp"})
    ]
    assert policy.lora.enabled and (policy.lora.r, policy.lora.alpha, policy.lora.dropout) == (32, 16, 0.0)
    assert not (policy.freeze_vision or policy.freeze_backbone or policy.from_scratch)
    assert (policy.augment.shift, policy.augment.brightness, policy.augment.contrast) == (6, 0.2, 0.2)
    assert recipe.train == {"lr": 5e-4, "batch_size": 8} and recipe.cotrain == {}
    assert crop_shift(64) == 2 and crop_shift(8) == 1
    bare = get_recipe("openvla-oft", proprio=False, backbone="qwen2.5-vl-tiny")
    assert not bare.policy.use_state and bare.policy.token_sources == []
    assert bare.policy.backbone == "qwen2.5-vl-tiny"


def test_trains_two_steps_and_reloads_with_identical_actions(tmp_path) -> None:
    from vlaworks.models.checkpoint import load_policy
    from vlaworks.sim.generate import generate
    from vlaworks.train.pipeline import build_recipe, train_policy

    data = tmp_path / "data"
    generate(["spatial"], episodes=2, out=data, seed=0, image_size=32)
    overrides = {
        "policy.image_size": 32,
        "policy.chunk_size": 4,
        "policy.backbone_options.image_size": 32,
        "policy.augment.shift": 1,
    }
    run = train_policy(
        build_recipe("openvla-oft", overrides=overrides),
        data,
        tmp_path / "run",
        train_overrides={"steps": 2, "batch_size": 4, "warmup_steps": 0, "progress": False},
    )
    assert run.result.losses and all(np.isfinite(run.result.losses))
    policy = run.policy
    assert policy.config.state_dim == 7
    trainable = {name for name, p in policy.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any(n.startswith("head.") for n in trainable)
    assert any(n.startswith("token_sources.0.proj.2") for n in trainable)
    assert "backbone.llm.model.layers.0.self_attn.q_proj.base_layer.weight" not in trainable
    obs = {
        "images": {"base": np.zeros((32, 32, 3), np.uint8), "wrist": np.full((32, 32, 3), 200, np.uint8)},
        "state": np.linspace(-0.5, 0.5, 7).astype(np.float32),
        "instruction": "pick up the leftmost cube",
    }
    expected = policy.predict_chunk([obs])
    assert expected.shape == (1, 4, 7) and np.isfinite(expected).all()
    reloaded = load_policy(run.policy_dir)
    np.testing.assert_array_equal(reloaded.predict_chunk([obs]), expected)
    assert torch.equal(
        reloaded.token_sources[0].proj[2].weight, policy.token_sources[0].proj[2].weight.to("cpu")
    )
