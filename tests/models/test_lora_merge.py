"""LoRA merge: the merged policy predicts the same actions, before and after a save / load
round trip, and is stored as a plain policy; the CLI writes the same folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vlaworks.cli import app
from vlaworks.models.checkpoint import load_policy, save_policy
from vlaworks.models.config import LoraOptions, PartSpec, PolicyConfig
from vlaworks.models.policy import build_policy, merge_lora

pytestmark = pytest.mark.usefixtures("fake_backbones")


def _lora_policy(normalizer):
    config = PolicyConfig(backbone="fake", backbone_options={"hidden": 32},
                          head=PartSpec("query_mlp", {"mlp_width": 16}), chunk_size=2, image_size=16,
                          cameras=("base",), lora=LoraOptions(enabled=True, r=2, alpha=4))
    torch.manual_seed(0)
    policy = build_policy(config, normalizer).eval()
    with torch.no_grad():  # peft initialises lora_B to zero: make the adapters change the output
        for name, p in policy.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.2)
    return policy


def _observations() -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"images": {"base": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)},
             "state": np.zeros(8, np.float32), "instruction": text}
            for text in ("pick up the cube", "open the drawer")]


def test_merged_policy_predicts_the_same_actions_after_save_and_load(tmp_path, normalizer):
    policy = _lora_policy(normalizer)
    before = policy.predict_chunk(_observations())
    unmerged_base = {k: v.clone() for k, v in policy.state_dict().items() if "base_layer" in k}
    merged = merge_lora(policy)
    assert not merged.config.lora.enabled and policy.config.lora.enabled  # the original is untouched
    np.testing.assert_allclose(merged.predict_chunk(_observations()), before, atol=1e-5)
    folder = save_policy(merged, tmp_path / "merged")
    keys = load_file(str(folder / "model.safetensors")).keys()
    assert not [k for k in keys if "lora_" in k or "base_layer" in k]
    reloaded = load_policy(folder)
    assert not reloaded.config.lora.enabled
    np.testing.assert_allclose(reloaded.predict_chunk(_observations()), before, atol=1e-5)
    # merging changed the LM weights (the adapters were not zero)
    q = next(k for k in unmerged_base if "q_proj.base_layer.weight" in k)
    assert not torch.allclose(reloaded.state_dict()[q.replace(".base_layer", "")], unmerged_base[q])


def test_export_policy_cli_merges_lora(tmp_path, normalizer):
    policy = _lora_policy(normalizer)
    before = policy.predict_chunk(_observations())
    save_policy(policy, tmp_path / "lora")
    result = CliRunner().invoke(app, ["export-policy", "--policy", str(tmp_path / "lora"), "--out",
                                      str(tmp_path / "out"), "--merge-lora"])
    assert result.exit_code == 0, result.output
    exported = load_policy(tmp_path / "out")
    assert not exported.config.lora.enabled
    np.testing.assert_allclose(exported.predict_chunk(_observations()), before, atol=1e-5)


def test_merging_a_policy_without_lora_is_a_clear_error(normalizer):
    config = PolicyConfig(backbone="fake", backbone_options={"hidden": 32}, head=PartSpec("query_mlp"),
                          chunk_size=2, image_size=16, cameras=("base",))
    with pytest.raises(ValueError, match="no LoRA adapters to merge"):
        merge_lora(build_policy(config, normalizer))
