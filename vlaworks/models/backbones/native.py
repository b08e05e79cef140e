"""Shared machinery of every backbone: native prompt -> embeddings -> stock LM forward.

A concrete backbone supplies four hooks: its native prompt as :class:`Piece` runs
(:meth:`NativeBackbone.prompt`), image features for the placeholder tokens
(:meth:`NativeBackbone.encode_images`), the LM call (:meth:`NativeBackbone.run_lm`) and,
when not plain 1-D, position ids. Everything else (padding, extra blocks, explicit 4-D
float masks, KV-cached decoding) lives here once.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.backbones.sequence import (
    CAUSAL,
    Assembled,
    Piece,
    assemble,
    attention_mask_4d,
    positions_1d,
)


@dataclass
class DecodeState:
    """KV cache plus what :meth:`NativeBackbone.step` needs to continue: which cached
    positions are real (``valid`` ``[B, L]``) and each row's next position id (``[B]``)."""

    past: Any
    valid: torch.Tensor
    next_pos: torch.Tensor


@dataclass
class LMResult:
    last: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None
    past: Any


@cache
def cache_argument(module_type: type[torch.nn.Module]) -> str:
    """The name under which ``module_type.forward`` takes the KV cache: ``cache`` from the
    transformers releases that renamed it (``past_key_values`` then only warns), else
    ``past_key_values``."""
    takes = inspect.signature(module_type.forward).parameters
    return "cache" if "cache" in takes else "past_key_values"


def call_lm(
    lm: torch.nn.Module, embeds, mask, position_ids, past, use_cache, output_hidden_states, **kw: Any
) -> LMResult:
    """Run a stock transformers decoder on ``inputs_embeds`` with an explicit mask and positions."""
    name = cache_argument(type(lm))
    out = lm(
        inputs_embeds=embeds,
        attention_mask=mask,
        position_ids=position_ids,
        use_cache=use_cache,
        output_hidden_states=output_hidden_states,
        **{name: past},
        **kw,
    )
    states = out.hidden_states if output_hidden_states else None
    return LMResult(out.last_hidden_state, states, getattr(out, name))


class NativeBackbone(Backbone):
    """Base of all backbones; see the module docstring."""

    def __init__(self, tokenizer: Any, prompt_scheme: str) -> None:
        super().__init__()
        self._tokenizer = tokenizer
        self.prompt_scheme = prompt_scheme
        if tokenizer.pad_token_id is None:
            raise ValueError("The tokenizer has no pad token; set tokenizer.pad_token before building.")

    # ----- hooks -------------------------------------------------------------------------
    @abstractmethod
    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        """The native prompt of one row (image placeholders included)."""

    @abstractmethod
    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """``[B, V, 3, H, W]`` uint8 -> features ``[B, n_image_tokens, hidden]`` in prompt
        order, plus context the LM call needs (grids, deepstack features...)."""

    @abstractmethod
    def run_lm(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: Any,
        use_cache: bool,
        output_hidden_states: bool,
        ctx: dict[str, Any],
    ) -> LMResult:
        """Run the stock decoder on embeddings with an explicit 4-D float mask."""

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Position ids for the full sequence and each row's next position (1-D default)."""
        pos = positions_1d(asm.valid)
        return pos, asm.valid.long().sum(-1)

    def step_positions(self, next_pos: torch.Tensor, n: int) -> torch.Tensor:
        return next_pos[:, None] + torch.arange(n, device=next_pos.device)[None]

    # ----- contract ----------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def text_ids(self, text: str) -> tuple[int, ...]:
        return tuple(self._tokenizer(text, add_special_tokens=False).input_ids)

    def token_id(self, token: str) -> int:
        tid = self._tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self._tokenizer.unk_token_id:
            raise ValueError(
                f"Token {token!r} is not in the tokenizer vocabulary; the checkpoint's "
                "tokenizer does not match this backbone family."
            )
        return int(tid)

    @property
    def device(self) -> torch.device:
        return self.input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.input_embeddings().weight.dtype

    def build_prompts(self, instructions: list[str], n_views: int) -> list[list[Piece]]:
        return [self.prompt(t, n_views) for t in instructions]

    def forward(
        self,
        images: torch.Tensor,
        instructions: list[str],
        extras: list[ExtraTokens] = (),
        *,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> BackboneOutput:
        if images.ndim != 5:
            raise ValueError(f"images must be [B, V, 3, H, W]; got {tuple(images.shape)}.")
        b, v = images.shape[:2]
        if len(instructions) != b:
            raise ValueError(f"{b} image rows but {len(instructions)} instructions.")
        device = self.device
        asm = assemble(self.build_prompts(instructions, v), extras, self._tokenizer.pad_token_id)
        ids = asm.ids.to(device)
        valid, is_image, group = asm.valid.to(device), asm.is_image.to(device), asm.group.to(device)
        feats, ctx = self.encode_images(images.to(device))
        if feats.shape[0] * feats.shape[1] != int(is_image.sum()):
            raise ValueError(
                f"Image features {tuple(feats.shape)} do not fill {int(is_image.sum())} "
                "image tokens; check image_size against the vision config."
            )
        prompt_len = ids.shape[1] - sum(e.length for e in extras)
        emb = self.input_embeddings()(ids[:, :prompt_len])
        emb = emb.masked_scatter(is_image[:, :prompt_len, None], feats.to(emb.dtype))
        parts = [emb]
        for e in extras:
            sl = asm.extra_pos[e.name]
            if e.embeds is not None:
                parts.append(e.embeds.to(device, emb.dtype))
            else:
                parts.append(self.input_embeddings()(ids[:, sl]))
        embeds = torch.cat(parts, dim=1)
        asm_dev = Assembled(ids, valid, is_image, group, asm.spans, asm.extra_pos)
        pos, next_pos = self.positions(asm_dev, ctx)
        mask = attention_mask_4d(valid, group, group, embeds.dtype)
        res = self.run_lm(embeds, mask, pos, None, use_cache, output_hidden_states, ctx)
        cache = DecodeState(res.past, valid, next_pos) if use_cache else None
        return BackboneOutput(
            hidden=res.last,
            spans=dict(asm.spans),
            attention_mask=valid,
            cache=cache,
            hidden_states=res.hidden_states,
            image_features=feats,
        )

    def step(self, ids: torch.Tensor, cache: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        if not isinstance(cache, DecodeState):
            raise TypeError("step() needs the cache of a forward(..., use_cache=True) call.")
        ids = ids.to(self.device)
        b, n = ids.shape
        embeds = self.input_embeddings()(ids)
        valid = torch.cat([cache.valid, torch.ones((b, n), dtype=torch.bool, device=ids.device)], dim=1)
        causal = torch.full(valid.shape, CAUSAL, dtype=torch.long, device=ids.device)
        mask = attention_mask_4d(valid, causal[:, -n:], causal, embeds.dtype)
        pos = self.step_positions(cache.next_pos, n)
        res = self.run_lm(embeds, mask, pos, cache.past, True, False, {})
        return res.last, DecodeState(res.past, valid, cache.next_pos + n)
