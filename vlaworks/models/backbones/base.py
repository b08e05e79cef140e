"""The backbone contract: images + instruction + extra token blocks -> hidden states.

Every backbone (Prismatic, Qwen2.5-VL, Qwen3-VL(-MoE), PaliGemma, Kosmos-2, SmolVLM) builds
its *native* prompt (seed 003, appendix A.2.3) around the images and the instruction,
then appends the policy's extra token blocks **at the end of the sequence, in order**.
Sequences are **left-padded**, so every extra block sits at the same indices for every
row of the batch and ``BackboneOutput.spans[name]`` is one ``slice`` for the batch.

An extra block is either embeddings produced by a token source (``<ActionQuery>``,
OFT action placeholders, ``<SEG>``, proprio, pixel-aware or visual-prompt tokens) or
token ids embedded by the LM's own embedding table (teacher-forced answer tokens of a
token head, VL answers). ``attention="bidirectional"`` makes the block attend to itself
in both directions (it always sees everything before it, and nothing after it sees
it unless that later block is also bidirectional with the same ``group``). Mixed masks
are built as explicit 4-D float additive masks for stock transformers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Attention = Literal["causal", "bidirectional"]


@dataclass
class ExtraTokens:
    """One block of tokens appended after the native prompt.

    Exactly one of ``embeds`` (``[B, n, hidden]``) or ``ids`` (``[B, n]`` long, embedded
    with the LM's input embeddings) is given. ``group`` lets several bidirectional blocks
    see each other (same group id).
    """

    name: str
    embeds: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    attention: Attention = "causal"
    group: int = 0

    def __post_init__(self) -> None:
        if (self.embeds is None) == (self.ids is None):
            raise ValueError(f"ExtraTokens {self.name!r}: give exactly one of embeds or ids.")

    @property
    def length(self) -> int:
        return int((self.embeds if self.embeds is not None else self.ids).shape[1])


@dataclass
class BackboneOutput:
    """Last-layer hidden states ``[B, L, hidden]`` and where each block lies.

    ``spans`` always holds ``"image"`` (image tokens of all views, may differ per row
    only if a backbone pads images, which none does), ``"text"`` is not guaranteed to be
    a single slice (left padding) and is therefore absent; every extra block's name maps
    to its slice. ``cache`` is an opaque decoding state for :meth:`Backbone.step`.
    """

    hidden: torch.Tensor
    spans: dict[str, slice]
    attention_mask: torch.Tensor
    cache: Any = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    image_features: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class Backbone(nn.Module, ABC):
    """A VLM trunk: native prompt, image encoding, LM forward, LM head and decoding."""

    #: width of the LM hidden states (what heads and token sources see)
    hidden_size: int

    @abstractmethod
    def forward(
        self,
        images: torch.Tensor,
        instructions: list[str],
        extras: list[ExtraTokens] = (),
        *,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> BackboneOutput:
        """Encode ``images`` (``[B, V, 3, H, W]`` uint8) and instructions, append ``extras``."""

    @abstractmethod
    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Continue a cached sequence by ``ids`` (``[B, n]``): returns hidden ``[B, n, h]``
        of the new tokens and the updated cache (autoregressive token heads)."""

    @abstractmethod
    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the LM head: ``[..., hidden] -> [..., vocab]``."""

    @abstractmethod
    def input_embeddings(self) -> nn.Embedding:
        """The LM word-embedding table (freezable, resizable for new tokens)."""

    @abstractmethod
    def vision_modules(self) -> list[nn.Module]:
        """The vision encoder(s) (freezable; the dual-encoder wrapper copies them)."""

    def language_modules(self) -> list[nn.Module]:
        """The language model (its layers, word embeddings and LM head): what a vision-language
        alignment stage keeps frozen while the vision side learns (``vlaworks pretrain
        --align-steps``). Families that do not name it raise (the default)."""
        raise ValueError(
            f"The {type(self).__name__} backbone does not name its language model, so it has no "
            "alignment stage; pretrain it with align_steps=0."
        )

    def vision_level_dims(self) -> tuple[int, ...]:
        """Channel width of every vision feature level this backbone exposes (level ``i`` of
        a ViT tower: ``0`` its patch embeddings, ``i`` the output of its layer ``i``), the
        levels PixelVLA's multiscale pixel-aware encoder (seed 000, Eq. 3) reads. Families
        without per-level features raise (the default)."""
        raise no_vision_levels(self)

    def vision_levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        """Vision features of ``images`` (``[B, V, 3, H, W]`` uint8) at ``levels`` (indices into
        :meth:`vision_level_dims`, negative from the deepest), each ``[B, V, C_i, h_i, w_i]``
        on its own spatial grid."""
        raise no_vision_levels(self)

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """The text tokenizer (a ``transformers`` tokenizer)."""

    @abstractmethod
    def save_pretrained(self, path: str) -> None:
        """Write config, tokenizer / processor settings and weights to a folder."""


def no_vision_levels(owner: object) -> ValueError:
    """The error of a backbone (or vision tower) without per-level vision features."""
    return ValueError(
        f"{type(owner).__name__} does not expose per-level vision features, which the pixel_aware "
        "token source reads; use a prismatic (DINOv2 + SigLIP) or paligemma backbone without dual_encoder."
    )
