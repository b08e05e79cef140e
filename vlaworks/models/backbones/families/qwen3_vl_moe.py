"""Qwen3-VL-MoE (``qwen3_vl_moe``, seed 003's Qwen3VL-30B-A3B): Qwen3-VL whose LM blocks
route each token to a few of many small expert MLPs; prompt, DeepStack image path and
M-RoPE positions are Qwen3-VL's."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig, Qwen3VLMoeForConditionalGeneration

from vlaworks.models.backbones.families.qwen3_vl import Qwen3VLBackbone, qwen3_rope, qwen3_vision_config
from vlaworks.models.backbones.families.qwen_vl import qwen_token_ids
from vlaworks.models.backbones.hf import special_ids, tiny_text_config


class Qwen3VLMoeBackbone(Qwen3VLBackbone):
    """Qwen3-VL-MoE; the registry model has 4 experts of width 64 per LM block, 2 active per token."""

    family = "qwen3-vl-moe"
    model_type = "qwen3_vl_moe"
    model_class = Qwen3VLMoeForConditionalGeneration

    @classmethod
    def tiny_config(cls, tok: Any, image_size: int, patch_size: int) -> PretrainedConfig:
        text = {
            **tiny_text_config(tok),
            "head_dim": 32,
            "rope_parameters": qwen3_rope(),
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 64,
        }
        return AutoConfig.for_model(
            cls.model_type,
            text_config=text,
            vision_config=qwen3_vision_config(image_size, patch_size),
            tie_word_embeddings=True,
            **qwen_token_ids(special_ids(tok)),
        )
