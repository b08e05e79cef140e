"""Qwen2.5-VL (``qwen2_5_vl``): windowed-attention ViT, CLIP normalisation."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig, Qwen2_5_VLForConditionalGeneration

from vlaworks.models.backbones.families.qwen_vl import QwenVLBackbone, qwen_token_ids, qwen_vision_config
from vlaworks.models.backbones.hf import special_ids, tiny_text_config
from vlaworks.models.vision.preprocess import CLIP_MEAN, CLIP_STD


class Qwen25VLBackbone(QwenVLBackbone):
    """Qwen2.5-VL with its chat prompt (see ``qwen_vl``)."""

    family = "qwen2.5-vl"
    model_type = "qwen2_5_vl"
    model_class = Qwen2_5_VLForConditionalGeneration
    image_mean, image_std = CLIP_MEAN, CLIP_STD

    @classmethod
    def tiny_config(cls, tok: Any, image_size: int, patch_size: int) -> PretrainedConfig:
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
        return AutoConfig.for_model(
            cls.model_type,
            text_config={**tiny_text_config(tok), "rope_parameters": rope},
            vision_config={**qwen_vision_config(patch_size), "window_size": 32, "fullatt_block_indexes": [1]},
            tie_word_embeddings=True,
            **qwen_token_ids(special_ids(tok)),
        )
