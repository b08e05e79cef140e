"""PokeVLA's action expert (seed 001, section V-D): action latents that read the VLM through
four attentions per layer.

The VLM runs once, OpenVLA-OFT style (seed 001 builds on OFT, section V-A): ``queries``
learnable *action query* embeddings are appended after everything else in the sequence as
one bidirectional block (they see the whole prefix and each other; the prefix never sees
them; the mask of ``parallel_l1``). The expert then reads, from the LM's **last layer**
(the paper aligns and reads last-layer states, V-C / V-D):

* the action query embeddings ``C_AQ`` (the block's last hidden states) and the proprio
  state ``P`` (OFT's ``ProprioProjector``, ``Linear -> GELU -> Linear``, into the expert's
  width; only when the policy reads state), one key / value set;
* the visual hidden states ``H_v`` of every view (the ``"image"`` span: base + wrist);
* the ``<SEG>`` embedding (the last hidden state of a block named ``"seg"``, which the
  ``seg`` token source appends) when the expert is built with ``seg`` (by default: when the
  policy has a ``seg`` token source); without it that attention does not exist.

``chunk`` action latents ``A`` (one learned embedding per chunk step) pass ``layers``
layers; each layer computes, from ``LN(A)``, self-attention over the latents and the
cross-attentions to (query states + proprio), to the visual states and to ``<SEG>``,
concatenates the attention outputs, projects them back to the latent width (residual) and
applies a pre-LN MLP (residual): "all attention outputs are concatenated and used to
compute the updated action latent". Finally ``LN -> MLP`` maps each latent to its step's
``action_dim`` values; the loss is L1 over the real (``action_mask``) steps (Eq. 7), and at
inference the gripper is binarised by its sign, as OFT's LIBERO evaluation does.

The VLM states are layer-normalised and projected to the expert's width once, shared by all
layers; every layer has its own query / key / value projections per attention. With the
paper's single ``<SEG>`` token the softmax over one key is 1, so that attention hands the
token's value to every latent (its query projection gets a zero gradient, not none).

The paper's equation (6) and its ``L``, width and query count are not in its text: the
defaults take VLA-Adapter's (whose 1.22B layout on Qwen2.5-0.5B PokeVLA shares): 64 action
queries, 8 attention heads, the expert as wide as the LM; ``layers = 4`` for the
miniature's 4-layer LM (VLA-Adapter uses one block per LM layer). Unlike VLA-Adapter, each
attention has its own softmax (four separate attentions, as the paper lists them) and no
learned gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.heads.base import ActionHead
from vlaworks.models.heads.parallel_l1 import l1_chunk_loss
from vlaworks.models.heads.query_mlp import gripper_to_sign

QUERY_BLOCK = "action_queries"
#: the queries' own bidirectional group: token sources' bidirectional blocks (group 0 by
#: default) sit before them and must not see them
QUERY_GROUP = 1
#: the block the ``seg`` token source appends (its last hidden state is the <SEG> embedding)
SEG_BLOCK = "seg"
#: name of the ``<SEG>`` token source in ``PolicyConfig.token_sources``
SEG_SOURCE = "seg"


@dataclass
class PokeVLAExpertOptions:
    """Options of the ``pokevla_expert`` head."""

    #: latent width of the expert (None: the LM width, as VLA-Adapter)
    width: int | None = None
    #: expert layers (L)
    layers: int = 4
    #: attention heads of every attention (width / heads must be an integer)
    heads: int = 8
    #: MLP width as a multiple of the expert width
    mlp_ratio: int = 4
    #: learnable action queries appended to the LM sequence (VLA-Adapter: 64)
    queries: int = 64
    #: cross-attend to the <SEG> embedding; None: when the policy has a ``seg`` token source
    seg: bool | None = None

    def __post_init__(self) -> None:
        if min(self.layers, self.heads, self.mlp_ratio, self.queries) < 1:
            raise ValueError(
                f"pokevla_expert layers, heads, mlp_ratio and queries must be >= 1; got {self.layers}, "
                f"{self.heads}, {self.mlp_ratio}, {self.queries}."
            )
        if self.width is not None and self.width < 1:
            raise ValueError(f"pokevla_expert width must be >= 1 or null (LM width); got {self.width}.")


class Attention(nn.Module):
    """Multi-head attention of the latents ``x`` over a context (itself for self-attention);
    returns the heads' merged values ``[B, T, width]`` (the layer projects the concatenation)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"pokevla_expert width {width} must split into {heads} heads.")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        return x.view(b, n, self.heads, w // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(context).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(self._split(self.q(x)), self._split(k), self._split(v))
        return out.transpose(1, 2).reshape(x.shape)


class ExpertLayer(nn.Module):
    """One layer: [self ; queries + proprio ; vision (; <SEG>)] attentions from ``LN(A)``,
    concatenated -> Linear (residual), then a pre-LN GELU MLP (residual)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, seg: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.self_attn = Attention(width, heads)
        self.query_attn = Attention(width, heads)
        self.vision_attn = Attention(width, heads)
        self.seg_attn = Attention(width, heads) if seg else None
        self.out = nn.Linear((4 if seg else 3) * width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def forward(
        self, x: torch.Tensor, queries: torch.Tensor, vision: torch.Tensor, seg: torch.Tensor | None
    ) -> torch.Tensor:
        h = self.norm(x)
        parts = [self.self_attn(h, h), self.query_attn(h, queries), self.vision_attn(h, vision)]
        if self.seg_attn is not None:
            parts.append(self.seg_attn(h, seg))
        x = x + self.out(torch.cat(parts, dim=-1))
        return x + self.mlp(self.mlp_norm(x))


def _context_projector(hidden_size: int, width: int) -> nn.Sequential:
    """LN over the VLM width, then a linear map to the expert width."""
    return nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, width))


class PokeVLAExpertHead(ActionHead):
    """PokeVLA's action expert; see the module docstring."""

    def __init__(
        self,
        hidden_size: int,
        chunk: int,
        action_dim: int = 7,
        state_dim: int | None = None,
        seg: bool = False,
        options: PokeVLAExpertOptions | None = None,
    ) -> None:
        super().__init__()
        options = options or PokeVLAExpertOptions()
        width = options.width or hidden_size
        self.hidden_size, self.chunk, self.action_dim, self.width = hidden_size, chunk, action_dim, width
        self.seg = seg
        self.query_embeds = nn.Parameter(torch.randn(1, options.queries, hidden_size) * 0.02)
        self.latents = nn.Parameter(torch.randn(1, chunk, width) * 0.02)
        self.query_in = _context_projector(hidden_size, width)
        self.vision_in = _context_projector(hidden_size, width)
        self.seg_in = _context_projector(hidden_size, width) if seg else None
        self.proprio_in = (
            nn.Sequential(nn.Linear(state_dim, width), nn.GELU(), nn.Linear(width, width))
            if state_dim
            else None
        )
        self.layers = nn.ModuleList(
            ExpertLayer(width, options.heads, options.mlp_ratio, seg) for _ in range(options.layers)
        )
        self.action_out = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, action_dim)
        )

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: PokeVLAExpertOptions
    ) -> PokeVLAExpertHead:
        """Registry builder: LM width from the backbone; chunk, action and state sizes from the
        config (the state goes into the expert when the policy reads it); ``seg`` from the
        options, else whether the policy has a ``seg`` token source."""
        state_dim = config.state_dim if config.use_state else None
        if config.use_state and not state_dim:
            raise ValueError(
                "The pokevla_expert head reads the state: set PolicyConfig.state_dim "
                "(train fills it from data)."
            )
        seg = options.seg
        if seg is None:
            seg = any(s.type == SEG_SOURCE for s in config.token_sources)
        return cls(backbone.hidden_size, config.chunk_size, config.action_dim, state_dim, seg, options)

    @property
    def num_queries(self) -> int:
        return int(self.query_embeds.shape[1])

    # --- ActionHead ------------------------------------------------------------------------------
    def extra_tokens(self, batch: Batch, backbone: Backbone, *, training: bool) -> list[ExtraTokens]:
        """One bidirectional block of the learnable action queries."""
        dtype = backbone.input_embeddings().weight.dtype
        embeds = self.query_embeds.to(dtype).expand(batch.size, -1, -1)
        return [ExtraTokens(QUERY_BLOCK, embeds=embeds, attention="bidirectional", group=QUERY_GROUP)]

    def decode(self, out: BackboneOutput, state: torch.Tensor | None) -> torch.Tensor:
        """Continuous chunk ``[B, chunk, action_dim]`` from the last-layer states of the action
        queries, the image tokens and (when built with it) the <SEG> block, and the state."""
        dtype = self.latents.dtype
        queries = self.query_in(self.block_states(out, QUERY_BLOCK).to(dtype))
        if self.proprio_in is not None:
            if state is None:
                raise ValueError("This pokevla_expert head reads the proprio state but the batch has none.")
            queries = torch.cat([queries, self.proprio_in(state.to(dtype))[:, None]], dim=1)
        vision = self.vision_in(self.block_states(out, "image").to(dtype))
        seg = self.seg_in(self.block_states(out, SEG_BLOCK).to(dtype)) if self.seg_in is not None else None
        x = self.latents.expand(queries.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, queries, vision, seg)
        return self.action_out(x)

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.target_actions(batch).float()
        pred = self.decode(out, batch.state).float()
        return l1_chunk_loss(pred, target, batch.action_mask.to(pred.device).float())

    @torch.no_grad()
    def predict(self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens]) -> torch.Tensor:
        """One backbone forward, then the expert; the gripper binarised to ``+-1``."""
        blocks = [*prefix, *self.extra_tokens(batch, backbone, training=False)]
        out = backbone(batch.images, batch.instructions, blocks)
        return gripper_to_sign(self.decode(out, batch.state).float())


#: the registry entry (``HEADS["pokevla_expert"]``)
PART = Part(PokeVLAExpertOptions, PokeVLAExpertHead.from_config)
