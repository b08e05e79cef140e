"""Kosmos-2 (``kosmos-2``): ``<s><image>img...</image><p>instruction\\n</p>`` (no grounding tokens)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, DynamicCache, Kosmos2ForConditionalGeneration, PretrainedConfig

from vlaworks.models.backbones.hf import HFVLMBackbone, special_ids, tiny_vision_config
from vlaworks.models.backbones.native import LMResult, cache_argument
from vlaworks.models.backbones.sequence import Assembled, Piece, positions_1d
from vlaworks.models.vision.preprocess import CLIP_MEAN, CLIP_STD


class Kosmos2Backbone(HFVLMBackbone):
    """Kosmos-2 (see the module docstring).

    Kosmos-2's text transformer builds its own 2-D-only mask, so its stock embedding
    (``forward_embedding``), decoder blocks and final norm are run here in sequence with
    the explicit 4-D mask.
    """

    family = "kosmos2"
    model_type = "kosmos-2"
    model_class = Kosmos2ForConditionalGeneration
    image_mean, image_std = CLIP_MEAN, CLIP_STD

    @classmethod
    def tiny_config(cls, tok: Any, image_size: int, patch_size: int) -> PretrainedConfig:
        ids = special_ids(tok)
        return AutoConfig.for_model(
            cls.model_type,
            text_config={
                "vocab_size": len(tok),
                "embed_dim": 128,
                "ffn_dim": 256,
                "layers": 2,
                "attention_heads": 4,
                "pad_token_id": tok.pad_token_id,
                "bos_token_id": ids["<s>"],
                "eos_token_id": ids["</s>"],
            },
            vision_config=tiny_vision_config(image_size, patch_size),
            latent_query_num=16,
        )

    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        n = self.model.config.latent_query_num
        pieces = [Piece((self.token_id("<s>"),))]
        for i in range(n_views):
            if i:
                pieces.append(Piece((self.token_id("</image>"),)))
            pieces += [
                Piece((self.token_id("<image>"),)),
                Piece((self.token_id("<image>"),) * n, kind="image"),
            ]
        tail = (
            self.token_id("</image>"),
            self.token_id("<p>"),
            *self.text_ids(instruction.strip() + "\n"),
            self.token_id("</p>"),
        )
        return [*pieces, Piece(tail)]

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        # Kosmos2ForConditionalGeneration's own image path: post-LN patch states, L2-normalised,
        # resampled to latent queries by the image-to-text projection
        b = images.shape[0]
        vm = self.model.vision_model
        states = vm.model.post_layernorm(vm(pixel_values=self.pixels(images)).last_hidden_state)
        feats, _ = self.model.image_to_text_projection(nn.functional.normalize(states, dim=-1))
        return feats.reshape(b, -1, feats.shape[-1]), {}

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.text_model.lm_head(hidden)

    @property
    def _offset(self) -> int:
        return int(self.model.config.text_config.pad_token_id) + 1

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        pos = positions_1d(asm.valid) + self._offset
        return pos.masked_fill(~asm.valid, self._offset - 1), asm.valid.long().sum(-1) + self._offset

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        tm = self.model.text_model.model
        if past is None and use_cache:
            past = DynamicCache(config=self.model.config.text_config)
        h = tm.forward_embedding(input_ids=None, inputs_embeds=embeds, position_ids=position_ids)
        states = [h]
        for layer in tm.layers:
            h = layer(h, mask, **{cache_argument(type(layer)): past if use_cache else None})
            states.append(h)
        h = tm.layer_norm(h)
        return LMResult(h, tuple(states) if output_hidden_states else None, past if use_cache else None)

    def vision_modules(self) -> list[nn.Module]:
        return [self.model.vision_model, self.model.image_to_text_projection]
