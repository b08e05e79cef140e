"""VLM4VLA's head (seed 003, section 3.2): one learnable ``<ActionQuery>`` token -> MLP -> chunk.

The query embedding is appended after the native image + instruction prompt as a causal
block, so its last hidden state has attended to everything before it. That state goes
through the paper's MLP ``Linear(h, h/2) -> ReLU -> Linear(h/2, 1024) -> Linear(1024, D*T)``
(the 1024 width is ``mlp_width``; ``first_width`` replaces ``h/2``, which a tiny LM's ``h`` makes
a narrow bottleneck: 64 for ``prismatic-tiny``). Training uses Huber on the pose dimensions plus binary
cross-entropy on the gripper logit (the normalised gripper target in [-1, 1] is mapped to
{0, 1} by its sign); at inference the gripper is ``+1`` where the logit is positive, else
``-1``. The head reads no proprio state, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.heads.base import ActionHead

QUERY_BLOCK = "action_query"


@dataclass
class QueryMLPOptions:
    """Options of the ``query_mlp`` head."""

    #: width of the MLP's wide layer (the paper's 1024)
    mlp_width: int = 1024
    #: width of the MLP's first layer (None: the paper's ``hidden_size // 2``)
    first_width: int | None = None
    #: Huber threshold on the normalised pose error
    huber_delta: float = 1.0
    #: pose loss: seed 003's Huber, or L1 (OpenVLA-OFT, ACT)
    pose_loss: Literal["huber", "l1"] = "huber"
    #: weight of the gripper BCE against the pose loss
    gripper_weight: float = 1.0
    #: standard deviation of the ``<ActionQuery>`` embedding's initialisation
    query_init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.pose_loss not in ("huber", "l1"):
            raise ValueError(f"Unknown pose_loss {self.pose_loss!r}; use 'huber' or 'l1'.")
        for name in ("mlp_width", "first_width"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"query_mlp {name} must be >= 1; got {value}.")


class QueryMLPHead(ActionHead):
    """``<ActionQuery>`` + MLP decoder with Huber (pose) + BCE (gripper) loss."""

    def __init__(
        self, hidden_size: int, chunk: int, action_dim: int = 7, options: QueryMLPOptions | None = None
    ) -> None:
        super().__init__()
        if hidden_size < 2:
            raise ValueError(f"QueryMLPHead needs hidden_size >= 2; got {hidden_size}.")
        options = options or QueryMLPOptions()
        self.pose_loss = options.pose_loss
        self.hidden_size = hidden_size
        self.chunk = chunk
        self.action_dim = action_dim
        self.huber_delta = options.huber_delta
        self.gripper_weight = options.gripper_weight
        self.query = nn.Parameter(torch.randn(1, 1, hidden_size) * options.query_init_std)
        first = options.first_width or hidden_size // 2
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, first),
            nn.ReLU(),
            nn.Linear(first, options.mlp_width),
            nn.Linear(options.mlp_width, action_dim * chunk),
        )

    @classmethod
    def from_config(cls, backbone: Backbone, config: PolicyConfig, options: QueryMLPOptions) -> QueryMLPHead:
        """Registry builder: width from the backbone, chunk / action size from the config."""
        return cls(backbone.hidden_size, config.chunk_size, config.action_dim, options)

    def extra_tokens(self, batch: Batch, backbone: Backbone, *, training: bool) -> list[ExtraTokens]:
        dtype = backbone.input_embeddings().weight.dtype
        embeds = self.query.to(dtype).expand(batch.size, 1, self.hidden_size)
        return [ExtraTokens(QUERY_BLOCK, embeds=embeds, attention="causal")]

    def decode(self, out: BackboneOutput) -> torch.Tensor:
        """Raw head output ``[B, chunk, action_dim]``: pose values and the gripper *logit*."""
        state = self.block_states(out, QUERY_BLOCK)[:, -1]
        flat = self.mlp(state.to(self.mlp[0].weight.dtype))
        return flat.view(-1, self.chunk, self.action_dim)

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.target_actions(batch).float()
        pred = self.decode(out).float()
        mask = batch.action_mask.to(pred.device).float()
        return action_loss(pred, target, mask, self.huber_delta, self.gripper_weight, self.pose_loss)

    @torch.no_grad()
    def predict(self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens]) -> torch.Tensor:
        blocks = [*prefix, *self.extra_tokens(batch, backbone, training=False)]
        out = backbone(batch.images, batch.instructions, blocks)
        return gripper_to_sign(self.decode(out).float())


def gripper_to_sign(raw: torch.Tensor) -> torch.Tensor:
    """Replace the last dimension's logit by ``+1`` (close) where positive, else ``-1`` (open)."""
    actions = raw.clone()
    actions[..., -1] = torch.where(raw[..., -1] > 0, 1.0, -1.0)
    return actions


def action_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    huber_delta: float = 1.0,
    gripper_weight: float = 1.0,
    pose_loss: str = "huber",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Seed 003's Eq. 1 over the real (``mask``) steps of ``[B, T, D]`` chunks.

    Pose: Huber per element (``pose_loss="l1"``: L1, as OpenVLA-OFT and ACT train), averaged
    over pose dimensions and real steps. Gripper: BCE on the logit ``pred[..., -1]`` against
    ``target[..., -1] > 0``, averaged over real steps.
    """
    steps = mask.sum().clamp(min=1.0)
    if pose_loss == "l1":
        pose = F.l1_loss(pred[..., :-1], target[..., :-1], reduction="none")
    else:
        pose = F.huber_loss(pred[..., :-1], target[..., :-1], reduction="none", delta=huber_delta)
    pose_loss = (pose.mean(-1) * mask).sum() / steps
    closed = (target[..., -1] > 0).float()
    bce = F.binary_cross_entropy_with_logits(pred[..., -1], closed, reduction="none")
    gripper_loss = (bce * mask).sum() / steps
    loss = pose_loss + gripper_weight * gripper_loss
    with torch.no_grad():
        err = (pred[..., :-1] - target[..., :-1]).abs()
        metrics = {
            "loss_pose": pose_loss.item(),
            "loss_gripper": gripper_loss.item(),
            "l1_pose": float((err.mean(-1) * mask).sum() / steps),
            "gripper_acc": float((((pred[..., -1] > 0).float() == closed).float() * mask).sum() / steps),
        }
        if pred.shape[-1] == 7:
            metrics["l1_translation"] = float((err[..., :3].mean(-1) * mask).sum() / steps)
            metrics["l1_rotation"] = float((err[..., 3:6].mean(-1) * mask).sum() / steps)
    return loss, metrics


#: the registry entry (``HEADS["query_mlp"]``)
PART = Part(QueryMLPOptions, QueryMLPHead.from_config)
