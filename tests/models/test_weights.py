"""Weights saved under an older transformers release load under the installed one: keys are
renamed with transformers' own conversion mapping, and what it cannot fix is still reported."""

from __future__ import annotations

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import Dinov2Config, Dinov2Model

from vlaworks.models.weights import load_weights, upgrade_keys

#: DINOv2 attention names before transformers renamed them (checkpoints written by 5.17)
OLD_NAMES = {
    "attention.q_proj": "attention.attention.query",
    "attention.k_proj": "attention.attention.key",
    "attention.v_proj": "attention.attention.value",
    "attention.o_proj": "attention.output.dense",
}


class Policyish(nn.Module):
    """A module holding a Hugging Face vision model under a prefix, like our backbones do."""

    def __init__(self) -> None:
        super().__init__()
        config = Dinov2Config(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=16,
            patch_size=8,
        )
        self.featurizer = nn.ModuleDict({"dino": Dinov2Model(config)})
        self.head = nn.Linear(16, 3)


def _old_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for new, old in OLD_NAMES.items():
            key = key.replace(new, old)
        out[key] = value.clone().contiguous()
    return out


def test_old_transformers_names_load_into_the_installed_model(tmp_path) -> None:
    torch.manual_seed(0)
    saved = Policyish()
    old = _old_layout(saved.state_dict())
    assert any("attention.attention.key" in k for k in old)  # the file really uses the old names
    save_file(old, tmp_path / "model.safetensors")

    torch.manual_seed(1)
    fresh = Policyish()
    assert load_weights(fresh, tmp_path / "model.safetensors") == ([], [])
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)


def test_upgrade_touches_only_hugging_face_submodels() -> None:
    module = Policyish()
    state = _old_layout(module.state_dict())
    state["head.attention.attention.key"] = torch.zeros(1)  # not under a HF model: left alone
    upgraded = upgrade_keys(module, state)
    assert "head.attention.attention.key" in upgraded
    assert set(upgraded) - {"head.attention.attention.key"} == set(module.state_dict())


def test_keys_no_mapping_explains_are_still_reported(tmp_path) -> None:
    module = Policyish()
    state = {k.replace("head.", "other_head."): v.clone() for k, v in module.state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    missing, unexpected = load_weights(Policyish(), tmp_path / "model.safetensors")
    assert missing == ["head.bias", "head.weight"]
    assert unexpected == ["other_head.bias", "other_head.weight"]
