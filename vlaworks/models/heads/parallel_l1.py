"""OpenVLA-OFT's parallel decoding with an L1 regression head (Kim et al. 2025, "OFT").

The head appends ``chunk x action_dim`` action *placeholders* after everything else in
the sequence (native prompt, then the token sources' blocks, e.g. a proprio token) as
ONE bidirectional block: each placeholder sees the whole prefix and every other
placeholder, while the prefix never sees them (an explicit 4-D additive mask built by
the backbone contract, ``backbones/sequence.py``). One forward pass yields all of them,
so a chunk costs one backbone call instead of ``chunk x 7`` autoregressive steps.

Placeholders are *zero* embeddings, as OFT's code does (it zeroes the input embeddings
of the action positions, ``input_embeddings * ~all_actions_mask``; seed 001 calls them
"empty action embeddings"): nothing but their position tells them apart, which the LM's
position encoding supplies. The block is placeholder-major in chunk order: position
``t * action_dim + d`` stands for dimension ``d`` of step ``t``.

Decoding follows OFT's ``L1RegressionActionHead``: the last hidden states of step ``t``'s
``action_dim`` placeholders are concatenated (``[B, chunk, action_dim * h]``) and an MLP
ResNet maps each step to its action,
``LN -> Linear(action_dim * h, w) -> ReLU -> N x (x + ReLU(Linear(LN(x)))) -> LN -> Linear(w, action_dim)``
with ``w = h`` (OFT: ``hidden_dim = llm_dim``) and ``N = 2`` blocks. Training minimises
the L1 error over all dimensions (gripper included) of the real (``action_mask``) steps;
at inference the gripper dimension is binarised by its sign, as OFT's LIBERO evaluation
does (``normalize_gripper_action(..., binarize=True)``).

Deviations from OFT's code, on purpose: no ``</s>`` stop token after the placeholders (its
embedding is a constant, and under our mask the placeholders would not see it); the
prefix keeps its causal mask (OFT's transformers fork runs the whole sequence without a
causal mask, so its prompt tokens also see the placeholders; the paper describes
bidirectional attention for the action tokens, which is what this builds).
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
from vlaworks.models.heads.query_mlp import gripper_to_sign

PLACEHOLDER_BLOCK = "action_placeholders"
#: the placeholders' own bidirectional group: token sources' bidirectional blocks (group 0
#: by default) sit before them and must not see them
PLACEHOLDER_GROUP = 1


@dataclass
class ParallelL1Options:
    """Options of the ``parallel_l1`` head."""

    #: width of the MLP ResNet (None: the LM width, as OFT's ``hidden_dim = llm_dim``)
    mlp_width: int | None = None
    #: residual blocks of the MLP ResNet (OFT: 2)
    blocks: int = 2

    def __post_init__(self) -> None:
        if self.mlp_width is not None and self.mlp_width < 1:
            raise ValueError(f"parallel_l1 mlp_width must be >= 1 or null (LM width); got {self.mlp_width}.")
        if self.blocks < 0:
            raise ValueError(f"parallel_l1 blocks must be >= 0; got {self.blocks}.")


class ResidualBlock(nn.Module):
    """Pre-LN feed-forward block ``x + ReLU(Linear(LN(x)))`` (OFT's ``MLPResNetBlock``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """``LN -> Linear -> ReLU -> blocks -> LN -> Linear`` (OFT's ``MLPResNet``)."""

    def __init__(self, in_dim: int, width: int, out_dim: int, blocks: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, width),
            nn.ReLU(),
            *(ResidualBlock(width) for _ in range(blocks)),
            nn.LayerNorm(width),
            nn.Linear(width, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ParallelL1Head(ActionHead):
    """Zero placeholders decoded in parallel, per-step MLP ResNet, L1 loss (module docstring)."""

    def __init__(
        self, hidden_size: int, chunk: int, action_dim: int = 7, options: ParallelL1Options | None = None
    ) -> None:
        super().__init__()
        options = options or ParallelL1Options()
        self.hidden_size, self.chunk, self.action_dim = hidden_size, chunk, action_dim
        width = options.mlp_width or hidden_size
        self.mlp = MLPResNet(action_dim * hidden_size, width, action_dim, options.blocks)

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: ParallelL1Options
    ) -> ParallelL1Head:
        """Registry builder: width from the backbone, chunk / action size from the config."""
        return cls(backbone.hidden_size, config.chunk_size, config.action_dim, options)

    @property
    def num_placeholders(self) -> int:
        return self.chunk * self.action_dim

    def extra_tokens(self, batch: Batch, backbone: Backbone, *, training: bool) -> list[ExtraTokens]:
        """One bidirectional block of ``chunk * action_dim`` zero embeddings."""
        weight = backbone.input_embeddings().weight
        embeds = torch.zeros(
            batch.size, self.num_placeholders, self.hidden_size, dtype=weight.dtype, device=weight.device
        )
        return [
            ExtraTokens(PLACEHOLDER_BLOCK, embeds=embeds, attention="bidirectional", group=PLACEHOLDER_GROUP)
        ]

    def decode(self, out: BackboneOutput) -> torch.Tensor:
        """Continuous chunk ``[B, chunk, action_dim]`` from the placeholders' last hidden states."""
        states = self.block_states(out, PLACEHOLDER_BLOCK)
        per_step = states.reshape(states.shape[0], self.chunk, self.action_dim * self.hidden_size)
        return self.mlp(per_step.to(self.mlp.net[1].weight.dtype))

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.target_actions(batch).float()
        pred = self.decode(out).float()
        return l1_chunk_loss(pred, target, batch.action_mask.to(pred.device).float())

    @torch.no_grad()
    def predict(self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens]) -> torch.Tensor:
        """One backbone forward for the whole chunk; the gripper binarised to ``+-1``."""
        blocks = [*prefix, *self.extra_tokens(batch, backbone, training=False)]
        out = backbone(batch.images, batch.instructions, blocks)
        return gripper_to_sign(self.decode(out).float())


def l1_chunk_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean absolute error over every dimension of the real (``mask`` ``[B, T]``) steps of
    ``[B, T, D]`` chunks (OFT: ``L1Loss()(ground_truth_actions, predicted_actions)``, which
    has no padding), plus per-part L1 and the gripper's sign accuracy for logging."""
    steps = mask.sum().clamp(min=1.0)
    err = F.l1_loss(pred, target, reduction="none")
    loss = (err.mean(-1) * mask).sum() / steps
    with torch.no_grad():
        same_side = ((pred[..., -1] > 0) == (target[..., -1] > 0)).float()
        metrics = {
            "l1": float(loss),
            "l1_pose": float((err[..., :-1].mean(-1) * mask).sum() / steps),
            "l1_gripper": float((err[..., -1] * mask).sum() / steps),
            "gripper_acc": float((same_side * mask).sum() / steps),
        }
        if pred.shape[-1] == 7:
            metrics["l1_translation"] = float((err[..., :3].mean(-1) * mask).sum() / steps)
            metrics["l1_rotation"] = float((err[..., 3:6].mean(-1) * mask).sum() / steps)
    return loss, metrics


#: the registry entry (``HEADS["parallel_l1"]``)
PART = Part(ParallelL1Options, ParallelL1Head.from_config)
