"""Proprio token source: the normalised robot state as one LM token (``Linear(S, h)``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.tokens.base import TokenSource

PROPRIO_BLOCK = "proprio"


@dataclass
class ProprioOptions:
    """The ``proprio`` source takes no options: its width is the backbone's and its input
    size ``PolicyConfig.state_dim``."""


class ProprioTokens(TokenSource):
    """Projects ``batch.state`` (``[B, S]``, normalised) to a single causal token."""

    def __init__(self, state_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.state_dim = state_dim
        self.proj = nn.Linear(state_dim, hidden_size)

    @classmethod
    def from_config(cls, backbone: Backbone, config: PolicyConfig, options: ProprioOptions) -> ProprioTokens:
        """Registry builder: needs ``config.use_state`` and ``config.state_dim``."""
        if not config.use_state or config.state_dim is None:
            raise ValueError(
                "The 'proprio' token source needs PolicyConfig.use_state=True and state_dim set."
            )
        return cls(config.state_dim, backbone.hidden_size)

    def tokens(self, batch: Batch, backbone: Backbone) -> list[ExtraTokens]:
        if batch.state is None:
            raise ValueError(
                "ProprioTokens needs batch.state; enable use_state in the dataset / policy config."
            )
        if batch.state.ndim != 2 or batch.state.shape[1] != self.state_dim:
            raise ValueError(
                f"ProprioTokens expects state [B, {self.state_dim}]; got {tuple(batch.state.shape)}."
            )
        if backbone.hidden_size != self.proj.out_features:
            raise ValueError(
                f"ProprioTokens was built for width {self.proj.out_features}, "
                f"asked for {backbone.hidden_size}."
            )
        embeds = self.proj(batch.state.to(self.proj.weight.dtype)).unsqueeze(1)
        return [ExtraTokens(PROPRIO_BLOCK, embeds=embeds)]


#: the registry entry (``TOKEN_SOURCES["proprio"]``)
PART = Part(ProprioOptions, ProprioTokens.from_config)
