"""Proprio token source: the normalised robot state as one LM token.

The projector is ``Linear(S, h)`` (``projector="linear"``, the default) or OpenVLA-OFT's
``ProprioProjector`` ``Linear(S, h) -> GELU -> Linear(h, h)`` (``projector="mlp"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.tokens.base import TokenSource

PROPRIO_BLOCK = "proprio"


@dataclass
class ProprioOptions:
    """Options of the ``proprio`` source; its width is the backbone's and its input size
    ``PolicyConfig.state_dim``."""

    #: ``"linear"``: one linear layer; ``"mlp"``: OpenVLA-OFT's two-layer GELU projector
    projector: Literal["linear", "mlp"] = "linear"


class ProprioTokens(TokenSource):
    """Projects ``batch.state`` (``[B, S]``, normalised) to a single causal token."""

    def __init__(
        self, state_dim: int, hidden_size: int, projector: Literal["linear", "mlp"] = "linear"
    ) -> None:
        super().__init__()
        self.state_dim = state_dim
        self.hidden_size = hidden_size
        if projector == "linear":
            self.proj: nn.Module = nn.Linear(state_dim, hidden_size)
        elif projector == "mlp":
            self.proj = nn.Sequential(
                nn.Linear(state_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
            )
        else:
            raise ValueError(f"Unknown proprio projector {projector!r}; use 'linear' or 'mlp'.")

    @classmethod
    def from_config(cls, backbone: Backbone, config: PolicyConfig, options: ProprioOptions) -> ProprioTokens:
        """Registry builder: needs ``config.use_state`` and ``config.state_dim``."""
        if not config.use_state or config.state_dim is None:
            raise ValueError(
                "The 'proprio' token source needs PolicyConfig.use_state=True and state_dim set."
            )
        return cls(config.state_dim, backbone.hidden_size, options.projector)

    def tokens(self, batch: Batch, backbone: Backbone) -> list[ExtraTokens]:
        if batch.state is None:
            raise ValueError(
                "ProprioTokens needs batch.state; enable use_state in the dataset / policy config."
            )
        if batch.state.ndim != 2 or batch.state.shape[1] != self.state_dim:
            raise ValueError(
                f"ProprioTokens expects state [B, {self.state_dim}]; got {tuple(batch.state.shape)}."
            )
        if backbone.hidden_size != self.hidden_size:
            raise ValueError(
                f"ProprioTokens was built for width {self.hidden_size}, asked for {backbone.hidden_size}."
            )
        dtype = next(self.proj.parameters()).dtype
        embeds = self.proj(batch.state.to(dtype)).unsqueeze(1)
        return [ExtraTokens(PROPRIO_BLOCK, embeds=embeds)]


#: the registry entry (``TOKEN_SOURCES["proprio"]``)
PART = Part(ProprioOptions, ProprioTokens.from_config)
