"""Qwen3-VL (``qwen3_vl``): as Qwen2.5-VL plus DeepStack (vision features added at early LM
layers) and interleaved M-RoPE; processor normalisation 0.5 / 0.5."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig, Qwen3VLForConditionalGeneration

from vlaworks.models.backbones.families.qwen_vl import QwenVLBackbone, qwen_token_ids, qwen_vision_config
from vlaworks.models.backbones.hf import special_ids, tiny_text_config
from vlaworks.models.vision.preprocess import HALF


class Qwen3VLBackbone(QwenVLBackbone):
    """Qwen3-VL with its chat prompt (see ``qwen_vl``)."""

    family = "qwen3-vl"
    model_type = "qwen3_vl"
    model_class = Qwen3VLForConditionalGeneration
    image_mean, image_std = HALF, HALF
    deepstack = True

    @classmethod
    def tiny_config(cls, tok: Any, image_size: int, patch_size: int) -> PretrainedConfig:
        return AutoConfig.for_model(
            cls.model_type,
            text_config={**tiny_text_config(tok), "head_dim": 32, "rope_parameters": qwen3_rope()},
            vision_config=qwen3_vision_config(image_size, patch_size),
            tie_word_embeddings=True,
            **qwen_token_ids(special_ids(tok)),
        )


def qwen3_rope() -> dict[str, Any]:
    """Interleaved M-RoPE over (temporal, height, width) sections of the 32-wide heads."""
    return {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [4, 6, 6],
        "mrope_interleaved": True,
    }


def qwen3_vision_config(image_size: int, patch_size: int) -> dict[str, Any]:
    """The Qwen3-VL vision tower: learnt position embeddings for the patch grid, DeepStack at block 0."""
    return {
        **qwen_vision_config(patch_size),
        "num_position_embeddings": (image_size // patch_size) ** 2,
        "deepstack_visual_indexes": [0],
    }
