"""PixelVLA's continuous action decoder (seed 000, section 4.1): linear -> N_r ResNet blocks -> MLP.

"The hidden states ``F^t`` from the last layer of the LLM backbone are sequentially
processed by a linear projector, ``N_r`` ResNet blocks and a MLP projector to obtain the
actions ``A in R^{N_c x 7}``", trained with L1 regression (Eq. 4) on continuous actions.

Which hidden states: as OpenVLA-OFT (whose L1 regression and MLP-ResNet head the paper
follows), the head appends ``N_c`` learned action-query embeddings, one per chunk step, as
one bidirectional block after the prompt and the token sources' blocks (pixel-aware and
prompt embeddings); the last-layer hidden state of query ``k`` decodes action ``k``::

    a_k = MLP( R_{N_r}( ... R_1( W h_k ) ) ),   R(x) = x + W_2 ReLU(W_1 LN(x))

with ``MLP = LN -> Linear -> GELU -> Linear(width, 7)``. The loss is the L1 error over every
action dimension (the gripper included, as a continuous value the env thresholds at 0),
averaged over the real (``action_mask``) steps; inference returns the decoded chunk as is.
``N_r`` is not given in the paper; OpenVLA-OFT uses 2 blocks (the default here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.heads.base import ActionHead
from vlaworks.models.heads.parallel_l1 import l1_chunk_loss

QUERY_BLOCK = "action_queries"


@dataclass
class ResNetDecoderOptions:
    """Options of the ``resnet_decoder`` head."""

    #: ``N_r``, residual MLP blocks
    blocks: int = 2
    #: width of the decoder (None: the LM width)
    width: int | None = None
    #: standard deviation of the action-query embeddings' initialisation
    query_init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.blocks < 0:
            raise ValueError(f"resnet_decoder blocks must be >= 0; got {self.blocks}.")
        if self.width is not None and self.width < 1:
            raise ValueError(f"resnet_decoder width must be >= 1; got {self.width}.")


class ResidualBlock(nn.Module):
    """``x + W_2 ReLU(W_1 LN(x))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


class ResNetDecoderHead(ActionHead):
    """Action queries -> last hidden states -> linear -> ``N_r`` ResNet blocks -> MLP, L1 loss."""

    def __init__(
        self, hidden_size: int, chunk: int, action_dim: int = 7, options: ResNetDecoderOptions | None = None
    ) -> None:
        super().__init__()
        options = options or ResNetDecoderOptions()
        width = options.width or hidden_size
        self.hidden_size = hidden_size
        self.chunk = chunk
        self.action_dim = action_dim
        self.queries = nn.Parameter(torch.randn(1, chunk, hidden_size) * options.query_init_std)
        self.proj = nn.Linear(hidden_size, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(options.blocks)))
        self.out = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, action_dim)
        )

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: ResNetDecoderOptions
    ) -> ResNetDecoderHead:
        """Registry builder: width from the backbone, chunk / action size from the config."""
        return cls(backbone.hidden_size, config.chunk_size, config.action_dim, options)

    def extra_tokens(self, batch: Batch, backbone: Backbone, *, training: bool) -> list[ExtraTokens]:
        dtype = backbone.input_embeddings().weight.dtype
        embeds = self.queries.to(dtype).expand(batch.size, -1, -1)
        return [ExtraTokens(QUERY_BLOCK, embeds=embeds, attention="bidirectional")]

    def decode(self, out: BackboneOutput) -> torch.Tensor:
        """The continuous chunk ``[B, chunk, action_dim]`` from the queries' last hidden states."""
        states = self.block_states(out, QUERY_BLOCK)
        return self.out(self.blocks(self.proj(states.to(self.proj.weight.dtype))))

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.target_actions(batch).float()
        pred = self.decode(out).float()
        return l1_chunk_loss(pred, target.to(pred.device), batch.action_mask.to(pred.device).float())

    @torch.no_grad()
    def predict(self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens]) -> torch.Tensor:
        blocks = [*prefix, *self.extra_tokens(batch, backbone, training=False)]
        return self.decode(backbone(batch.images, batch.instructions, blocks)).float()


#: the registry entry (``HEADS["resnet_decoder"]``)
PART = Part(ResNetDecoderOptions, ResNetDecoderHead.from_config)
