"""PaliGemma (``paligemma`` with a Gemma text model): SigLIP tower, Gemma decoder.

Prompt ``<image>... <bos> instruction \\n``. Schemes: ``vlm4vla`` (default, seed 003)
image tokens bidirectional, text causal; ``prefix`` image + text form the bidirectional
prefix (PaliGemma's own prefix-LM).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoConfig, DynamicCache, PaliGemmaForConditionalGeneration, PretrainedConfig

from vlaworks.models.backbones.base import no_vision_levels
from vlaworks.models.backbones.family import Folder
from vlaworks.models.backbones.hf import HFVLMBackbone, special_ids, tiny_text_config, tiny_vision_config
from vlaworks.models.backbones.native import LMResult, call_lm
from vlaworks.models.backbones.sequence import Assembled, Piece
from vlaworks.models.vision.dual import DualVision
from vlaworks.models.vision.levels import tower_level_dims, vit_levels
from vlaworks.models.vision.preprocess import HALF


class PaliGemmaBackbone(HFVLMBackbone):
    """PaliGemma 1 (see the module docstring)."""

    family = "paligemma"
    model_type = "paligemma"
    model_class = PaliGemmaForConditionalGeneration
    image_mean, image_std = HALF, HALF
    schemes = ("vlm4vla", "prefix")
    #: ``model_type`` of the text model (PaliGemma 2 uses Gemma 2)
    text_model_type: ClassVar[str] = "gemma"

    @classmethod
    def owns(cls, folder: Folder) -> bool:
        text = (folder.hf_config or {}).get("text_config") or {}
        return super().owns(folder) and text.get("model_type", "gemma") == cls.text_model_type

    @classmethod
    def tiny_config(cls, tok: Any, image_size: int, patch_size: int) -> PretrainedConfig:
        gemma = {
            **tiny_text_config(tok),
            "model_type": cls.text_model_type,
            "head_dim": 32,
            "num_key_value_heads": 1,
        }
        return AutoConfig.for_model(
            cls.model_type,
            text_config=gemma,
            vision_config={**tiny_vision_config(image_size, patch_size), "model_type": "siglip_vision_model"},
            projection_dim=128,
            image_token_id=special_ids(tok)["<image>"],
            vocab_size=len(tok),
        )

    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        n = (self.model.config.vision_config.image_size // self.model.config.vision_config.patch_size) ** 2
        image = Piece((self.model.config.image_token_id,) * (n * n_views), kind="image", bidirectional=True)
        text = (self._tokenizer.bos_token_id, *self.text_ids(instruction.strip() + "\n"))
        return [image, Piece(text, bidirectional=self.prompt_scheme == "prefix")]

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        b = images.shape[0]
        feats = self.model.model.get_image_features(self.pixels(images)).pooler_output
        return feats.reshape(b, -1, feats.shape[-1]), {}

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        pos, nxt = super().positions(asm, ctx)
        return pos + 1, nxt + 1  # PaliGemma positions are 1-indexed

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        if past is None and use_cache:
            past = DynamicCache(config=self.model.config.text_config)
        return call_lm(
            self.model.model.language_model, embeds, mask, position_ids, past, use_cache, output_hidden_states
        )

    def vision_modules(self) -> list[nn.Module]:
        return [self.model.model.vision_tower, self.model.model.multi_modal_projector]

    def vision_level_dims(self) -> tuple[int, ...]:
        if isinstance(self.model.model.vision_tower, DualVision):
            raise no_vision_levels(self.model.model.vision_tower)
        return tower_level_dims(self.model.config.vision_config)

    def vision_levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        self.vision_level_dims()  # a dual tower has no levels
        b, v = images.shape[:2]
        feats = vit_levels(self.model.model.vision_tower, self.pixels(images.to(self.device)), levels)
        return [f.reshape(b, v, *f.shape[1:]) for f in feats]
