"""Recipe registry and the VLM4VLA recipes."""

from __future__ import annotations

import pytest

from vlaworks.models.config import PolicyConfig
from vlaworks.recipes import get_recipe, recipe_names


def test_unknown_recipe_lists_known_names() -> None:
    with pytest.raises(KeyError, match=r"Unknown recipe .nope.*vlm4vla, vlm4vla\+proprio, vlm4vla-freeze"):
        get_recipe("nope")


def test_vlm4vla_follows_the_paper() -> None:
    recipe = get_recipe("vlm4vla", backbone="paligemma-tiny")
    policy = recipe.policy
    assert policy.head.type == "query_mlp" and policy.head.options["mlp_width"] == 1024
    assert (policy.chunk_size, policy.image_size, policy.cameras) == (4, 224, ("base",))
    assert not policy.use_state and not policy.token_sources
    assert not (policy.freeze_vision or policy.freeze_word_embeddings or policy.from_scratch)
    assert not policy.lora.enabled
    assert recipe.train == {"lr": 5e-5, "batch_size": 64}
    calvin = get_recipe("vlm4vla", setting="calvin")
    assert (calvin.policy.chunk_size, calvin.train["lr"], calvin.train["batch_size"]) == (10, 2e-5, 16)


@pytest.mark.parametrize(
    ("name", "switch"),
    [
        ("vlm4vla-scratch", "from_scratch"),
        ("vlm4vla-freeze-vision", "freeze_vision"),
        ("vlm4vla-freeze-embeddings", "freeze_word_embeddings"),
    ],
)
def test_ablation_variants(name: str, switch: str) -> None:
    recipe = get_recipe(name, backbone="prismatic-tiny")
    assert recipe.name == name and name in recipe_names()
    assert getattr(recipe.policy, switch)
    assert recipe.policy.backbone == "prismatic-tiny"


def test_vlm_fast_writes_fast_tokens_with_vision_trained_or_frozen() -> None:
    trained, frozen = get_recipe("vlm-fast"), get_recipe("vlm-fast-freeze-vision")
    for recipe in (trained, frozen):
        assert recipe.policy.head.type == "token"
        assert recipe.policy.head.options == {"tokenizer": "fast", "vocab_size": 1024}
        assert recipe.policy.chunk_size == 4 and recipe.train == get_recipe("vlm4vla").train
    assert (trained.name, trained.policy.freeze_vision) == ("vlm-fast", False)
    assert (frozen.name, frozen.policy.freeze_vision) == ("vlm-fast-freeze-vision", True)


def test_override_dotted_keys_and_roundtrip() -> None:
    recipe = get_recipe("vlm4vla").override(
        {"policy.chunk_size": 8, "policy.head.options.mlp_width": 64, "policy.lora.r": 4, "train.lr": 1e-4}
    )
    assert recipe.policy.chunk_size == 8 and recipe.policy.head.options["mlp_width"] == 64
    assert recipe.policy.lora.r == 4 and recipe.train["lr"] == 1e-4
    assert PolicyConfig.from_dict(recipe.to_dict()["policy"]) == recipe.policy
    with pytest.raises(ValueError, match="Unknown PolicyConfig key"):
        recipe.override({"policy.chunk": 8})
    with pytest.raises(KeyError, match="must start with"):
        recipe.override({"lr": 1.0})


def test_train_config_from_recipe(tmp_path) -> None:
    config = get_recipe("vlm4vla").train_config(tmp_path, steps=10)
    assert (config.lr, config.batch_size, config.steps) == (5e-5, 64, 10)
    with pytest.raises(KeyError, match="unknown training key"):
        get_recipe("vlm4vla").train_config(tmp_path, learning_rate=1.0)


def test_bc_cnn_is_the_plain_cnn_floor(tmp_path) -> None:
    """bc-cnn trains through the common pipeline and reloads with identical actions."""
    import numpy as np

    from vlaworks.models.checkpoint import load_policy
    from vlaworks.sim.generate import generate
    from vlaworks.train.pipeline import build_recipe, train_policy

    recipe = get_recipe("bc-cnn")
    policy = recipe.policy
    assert policy.backbone == "cnn" and policy.use_state
    assert [s.type for s in policy.token_sources] == ["proprio"]
    assert policy.augment.shift == 4 and policy.head.options["pose_loss"] == "l1"
    with pytest.raises(ValueError, match="no VLM"):
        get_recipe("bc-cnn", backbone="prismatic-tiny")
    data = tmp_path / "data"
    generate(["spatial"], episodes=2, out=data, seed=0, image_size=32)
    run = train_policy(build_recipe("bc-cnn", overrides={"policy.image_size": 32}), data, tmp_path / "run",
                       train_overrides={"steps": 2, "batch_size": 4, "warmup_steps": 0, "progress": False})
    assert run.recipe.policy.state_dim == 7
    obs = {"images": {"base": np.zeros((32, 32, 3), np.uint8), "wrist": np.ones((32, 32, 3), np.uint8)},
           "state": np.zeros(7, np.float32), "instruction": "pick up the leftmost cube"}
    reloaded = load_policy(run.policy_dir).predict_chunk([obs])
    np.testing.assert_array_equal(reloaded, run.policy.predict_chunk([obs]))


def test_pi0_trains_the_flow_expert_on_paligemma_and_reloads(tmp_path) -> None:
    """pi0 composes PaliGemma + the flow expert reading the state; it trains through the common
    pipeline and a reloaded checkpoint samples the same chunk from the same noise seed."""
    import numpy as np
    import torch

    from vlaworks.models.checkpoint import load_policy
    from vlaworks.sim.generate import generate
    from vlaworks.train.pipeline import build_recipe, train_policy

    policy = get_recipe("pi0").policy
    assert (policy.backbone, policy.head.type, policy.chunk_size) == ("paligemma-tiny", "flow", 50)
    assert policy.use_state and policy.token_sources == [] and policy.head.options["num_steps"] == 10
    plus = get_recipe("pi0+")
    assert plus.policy.head.options["tokenizer"] == "string" and plus.policy.backbone_options["dual_encoder"]
    assert plus.cotrain["vl_fraction"] == 0.5 and not plus.policy.use_state
    data = tmp_path / "data"
    generate(["spatial"], episodes=2, out=data, seed=0, image_size=32)
    overrides = {"policy.image_size": 32, "policy.chunk_size": 4, "policy.head.options.num_steps": 3,
                 "policy.backbone_options.image_size": 32}
    run = train_policy(build_recipe("pi0", overrides=overrides), data, tmp_path / "run",
                       train_overrides={"steps": 2, "batch_size": 4, "warmup_steps": 0, "progress": False})
    assert run.result.losses and all(np.isfinite(run.result.losses))
    obs = {"images": {"base": np.zeros((32, 32, 3), np.uint8), "wrist": np.ones((32, 32, 3), np.uint8)},
           "state": np.zeros(7, np.float32), "instruction": "pick up the leftmost cube"}
    reloaded = load_policy(run.policy_dir)
    torch.manual_seed(5)
    expected = run.policy.predict_chunk([obs])
    torch.manual_seed(5)
    np.testing.assert_allclose(reloaded.predict_chunk([obs]), expected, atol=1e-5)
    assert expected.shape == (1, 4, 7)
