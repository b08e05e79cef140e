"""VL pretraining writes a backbone folder that recipes load as their initial VLM."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vlaworks.miniature import MINIATURE_PRETRAIN
from vlaworks.models.backbones import build_backbone
from vlaworks.models.policy import build_policy
from vlaworks.train.pipeline import build_recipe
from vlaworks.train.pretrain import pretrain_vlm


def test_pretrain_rejects_fewer_samples_than_a_batch(tmp_path):
    with pytest.raises(ValueError, match="at least one batch"):
        pretrain_vlm(tmp_path, replace(MINIATURE_PRETRAIN, vl_samples=2, batch_size=4))


@pytest.mark.slow
def test_pretrained_backbone_is_what_recipes_start_from(tmp_path, one_thread):
    torch.manual_seed(0)
    budget = replace(MINIATURE_PRETRAIN, vl_samples=8, steps=3, batch_size=4, image_size=32, patch_size=16)
    folder = pretrain_vlm(tmp_path / "pre", budget)
    assert (tmp_path / "pre" / "metrics.csv").exists() and (tmp_path / "pre" / "vl_pretrain.npz").exists()
    fresh = build_backbone("prismatic-tiny", image_size=32, patch_size=16)
    loaded = build_backbone(str(folder))
    trained = loaded.state_dict()
    # pretraining moved the LM (a fresh random init is different, the saved one reloads exactly)
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    recipe = build_recipe("openvla+D", backbone=str(folder), overrides={
        "policy.image_size": 32, "policy.backbone_options.image_size": 32,
    })
    policy = build_policy(recipe.policy)
    lm_key = next(k for k in trained if k.startswith("llm.") and k.endswith("embed_tokens.weight"))
    assert torch.equal(policy.backbone.state_dict()[lm_key], trained[lm_key])
