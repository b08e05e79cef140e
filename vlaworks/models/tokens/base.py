"""Token sources: modules that add blocks of embeddings to the backbone's sequence.

Proprio, pixel-aware, visual-prompt, ``<SEG>`` and (through heads) ``<ActionQuery>`` /
action placeholders are token sources. Each reads only the batch fields it needs and
returns :class:`~vlaworks.models.backbones.base.ExtraTokens` appended after the prompt.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, ExtraTokens


class TokenSource(nn.Module, ABC):
    """Produces extra token blocks for one batch."""

    @abstractmethod
    def tokens(self, batch: Batch, backbone: Backbone) -> list[ExtraTokens]:
        """Blocks to append (in order) for ``batch``; embeddings have the width of ``backbone``,
        whose vision features a source may read (the pixel-aware encoder does)."""
