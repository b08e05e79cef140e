"""PaliGemma 2 (``paligemma`` with a Gemma 2 text model): PaliGemma's prompt and image path."""

from __future__ import annotations

from vlaworks.models.backbones.families.paligemma import PaliGemmaBackbone


class PaliGemma2Backbone(PaliGemmaBackbone):
    """PaliGemma 2 (see ``paligemma``)."""

    family = "paligemma2"
    text_model_type = "gemma2"

    @classmethod
    def supported_attn(cls, attn_implementation: str) -> str:
        """transformers' Gemma 2 has no sdpa path (attention logit soft-capping): eager instead."""
        return "eager" if attn_implementation == "sdpa" else attn_implementation
