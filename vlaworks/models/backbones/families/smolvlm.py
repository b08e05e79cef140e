"""SmolVLM (``smolvlm``, Idefics3 family): one global image per view, chat format
``<|im_start|>User:<fake_token_around_image><global-img><image>...<fake_token_around_image>
instruction<end_of_utterance>\\nAssistant:``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, DynamicCache, PretrainedConfig, SmolVLMForConditionalGeneration

from vlaworks.models.backbones.hf import HFVLMBackbone, special_ids, tiny_text_config, tiny_vision_config
from vlaworks.models.backbones.native import LMResult, call_lm
from vlaworks.models.backbones.sequence import Piece
from vlaworks.models.vision.preprocess import HALF


class SmolVLMBackbone(HFVLMBackbone):
    """SmolVLM (see the module docstring); the connector pixel-shuffles 2 x 2 patches."""

    family = "smolvlm"
    model_type = "smolvlm"
    model_class = SmolVLMForConditionalGeneration
    image_mean, image_std = HALF, HALF

    @classmethod
    def tiny_config(cls, tok: Any, image_size: int, patch_size: int) -> PretrainedConfig:
        return AutoConfig.for_model(
            cls.model_type,
            text_config={**tiny_text_config(tok), "model_type": "llama"},
            vision_config=tiny_vision_config(image_size, patch_size),
            scale_factor=2,
            image_token_id=special_ids(tok)["<image>"],
            tie_word_embeddings=True,
        )

    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        fake, glob = self.token_id("<fake_token_around_image>"), self.token_id("<global-img>")
        n = self.model.model.image_seq_len
        pieces = [Piece(self.text_ids("<|im_start|>User:"))]
        for _ in range(n_views):
            pieces += [
                Piece((fake, glob)),
                Piece((self.model.config.image_token_id,) * n, kind="image"),
                Piece((fake,)),
            ]
        pieces.append(Piece(self.text_ids(f"{instruction.strip()}<end_of_utterance>\nAssistant:")))
        return pieces

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        b, v = images.shape[:2]
        pv = self.pixels(images).reshape(b, v, 3, self.image_size, self.image_size)
        feats = torch.cat(self.model.model.get_image_features(pv, return_dict=True).pooler_output, dim=0)
        return feats.reshape(b, -1, feats.shape[-1]), {}

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        if past is None and use_cache:
            past = DynamicCache(config=self.model.config.text_config)
        return call_lm(
            self.model.model.text_model, embeds, mask, position_ids, past, use_cache, output_hidden_states
        )

    def vision_modules(self) -> list[nn.Module]:
        return [self.model.model.vision_model, self.model.model.connector]
