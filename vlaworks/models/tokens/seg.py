"""The ``<SEG>`` token source (seed 001, §V-B, LISA's embedding-as-mask).

PokeVLA extends the VLM's vocabulary with one special token ``<SEG>`` and reads its
last-layer hidden state as the prompt of the mask decoder (``seg_mask`` auxiliary loss,
:mod:`vlaworks.models.aux.seg`). Here the token is one learned embedding appended after the
prompt as the causal block ``"seg"``: it sees the images, the instruction and every earlier
block, and later blocks (the head's action queries) see it. A learned input embedding is
what a new vocabulary row is, without resizing the LM's table (which LoRA and frozen word
embeddings keep fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.tokens.base import TokenSource

SEG_BLOCK = "seg"


@dataclass
class SegOptions:
    """Options of the ``seg`` token source."""

    #: standard deviation of the ``<SEG>`` embedding's initialisation
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.init_std <= 0:
            raise ValueError(f"seg init_std must be > 0; got {self.init_std}.")


class SegToken(TokenSource):
    """One learned ``<SEG>`` embedding per row, as the causal block ``"seg"``."""

    def __init__(self, hidden_size: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Parameter(torch.randn(1, 1, hidden_size) * init_std)

    @classmethod
    def from_config(cls, backbone: Backbone, config: PolicyConfig, options: SegOptions) -> SegToken:
        """Registry builder: the backbone's width."""
        return cls(backbone.hidden_size, options.init_std)

    def tokens(self, batch: Batch, backbone: Backbone) -> list[ExtraTokens]:
        if backbone.hidden_size != self.hidden_size:
            raise ValueError(
                f"SegToken was built for width {self.hidden_size}, asked for {backbone.hidden_size}."
            )
        return [ExtraTokens(SEG_BLOCK, embeds=self.embedding.expand(batch.size, -1, -1))]


#: the registry entry (``TOKEN_SOURCES["seg"]``)
PART = Part(SegOptions, SegToken.from_config)
