"""Training stages: a stage starts from the previous stage's weights, or says why it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vlaworks.data.normalize import Normalizer
from vlaworks.models.checkpoint import save_policy
from vlaworks.train.pipeline import build_recipe
from vlaworks.train.stages import build_stage_policy

TINY = {
    "policy.image_size": 32,
    "policy.backbone_options.image_size": 32,
    "policy.backbone_options.patch_size": 8,
}


def _normalizer() -> Normalizer:
    stat = {"min": [-1.0] * 7, "max": [1.0] * 7, "q01": [-1.0] * 7, "q99": [1.0] * 7}
    return Normalizer({"action": stat}, mode="q99", keys=("action",))


def test_stages_need_one_backbone_and_full_weights(tmp_path: Path) -> None:
    recipe = build_recipe("pixelvla", overrides=TINY)
    vla, _, pue = (recipe.stage_recipe(s).policy for s in recipe.stages)
    torch.manual_seed(0)
    save_policy(build_stage_policy(pue, _normalizer(), None)[0], tmp_path / "lora")
    with pytest.raises(ValueError, match="trained with LoRA adapters"):
        build_stage_policy(vla, _normalizer(), tmp_path / "lora")
    wider = build_recipe("pixelvla", overrides={**TINY, "policy.backbone_options.patch_size": 16})
    save_policy(
        build_stage_policy(wider.stage_recipe(wider.stages[0]).policy, _normalizer(), None)[0],
        tmp_path / "other",
    )
    with pytest.raises(ValueError, match="same backbone"):
        build_stage_policy(vla, _normalizer(), tmp_path / "other")
