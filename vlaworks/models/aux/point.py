"""Target-point grounding loss ``target_point``: the hidden state the action head reads must
say where the manipulation target is in every view.

Why: on the miniature world's random layouts every VLA recipe fits the demonstrations yet
rarely reaches the named object, while a mask prompt of that object lifts the same policy
(BENCHMARKS.md, "The target's location as an input"). PokeVLA's ``seg_mask`` loss grounds a
separate decoder with its own image encoder, so the tokens the action head reads need not
learn *where* the object is. This loss puts the location on the action path itself: a small
projector ``Linear(h, h) -> GELU -> Linear(h, 3 V)`` reads the mean last hidden state of the
head's block (VLM4VLA's ``<ActionQuery>`` by default) and predicts, per camera view, the
centroid of the target's ground-truth mask in image coordinates (x, y in [-1, 1], after the
training augmentation's shift, as the masks move with it) and a visibility logit. The loss is

    L_point = Σ_views [ visible · |ĉ - c|_1 / 2 ] / max(1, #visible) + λ_vis · BCE(v̂, visible)

averaged over the batch. It is a vlaworks addition, not one of the seeds' losses (the closest
published relative is ECoT's bounding-box reasoning for OpenVLA); training only: nothing of it
runs at inference, and ``vlaworks export-policy --drop-aux`` drops its projector. It needs a
dataset with target masks (``vlaworks generate --segmentation``)::

    vlaworks train --recipe vlm4vla+proprio --data DATA --out RUN \\
        --set 'policy.aux_losses=[{"type": "target_point"}]'

Metrics: ``l1_px_<camera>`` (mean absolute centroid error per axis in pixels of the view,
visible targets only) and ``vis_acc`` (visibility accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.policy import AuxLoss


@dataclass
class TargetPointOptions:
    """Options of the ``target_point`` auxiliary loss (module docstring)."""

    #: weight of L_point in the policy's total loss
    weight: float = 1.0
    #: λ_vis, weight of the visibility BCE inside L_point
    visibility_weight: float = 0.1
    #: the token block whose last hidden states (mean over the block) are read: the action
    #: head's (``action_query`` for VLM4VLA's query_mlp, ``action_placeholders`` for OFT's
    #: parallel_l1, ``action_queries`` for the ResNet decoder and PokeVLA's expert)
    block: str = "action_query"

    def __post_init__(self) -> None:
        if self.weight <= 0 or self.visibility_weight < 0:
            raise ValueError(
                "target_point needs weight > 0 and visibility_weight >= 0; got "
                f"{self.weight}, {self.visibility_weight}."
            )


def mask_centroids(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids ``[..., 2]`` (x, y in [-1, 1], pixel centres) of bool masks ``[..., H, W]``
    and whether each mask is non-empty ``[...]``; an empty mask's centroid is (0, 0)."""
    h, w = masks.shape[-2:]
    weights = masks.float()
    mass = weights.sum((-2, -1))
    ys = (torch.arange(h, dtype=torch.float32, device=masks.device) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, dtype=torch.float32, device=masks.device) + 0.5) / w * 2 - 1
    x = (weights.sum(-2) * xs).sum(-1) / mass.clamp(min=1)
    y = (weights.sum(-1) * ys).sum(-1) / mass.clamp(min=1)
    return torch.stack([x, y], dim=-1), mass > 0


class TargetPointLoss(AuxLoss):
    """Projector from the head's block to per-view target centroids (module docstring)."""

    def __init__(self, hidden_size: int, cameras: tuple[str, ...], options: TargetPointOptions) -> None:
        super().__init__()
        self.weight = options.weight
        self.cameras = tuple(cameras)
        self.options = options
        self.projector = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, 3 * len(cameras))
        )

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: TargetPointOptions
    ) -> TargetPointLoss:
        """Registry builder: the projector reads the LM width and predicts for every camera."""
        return cls(backbone.hidden_size, config.cameras, options)

    def predict(self, out: BackboneOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted centroids ``[B, V, 2]`` (tanh, in [-1, 1]) and visibility logits ``[B, V]``."""
        block = self.options.block
        if block not in out.spans:
            raise KeyError(
                f"target_point reads the {block!r} block but the backbone output has "
                f"{sorted(out.spans)}; set its option block to the action head's block."
            )
        state = out.hidden[:, out.spans[block]].mean(1)
        raw = self.projector(state.to(self.projector[0].weight.dtype)).float()
        raw = raw.reshape(state.shape[0], len(self.cameras), 3)
        return torch.tanh(raw[..., :2]), raw[..., 2]

    def targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's target centroids ``[B, V, 2]`` and visibility ``[B, V]`` from its masks
        (checked: present, one per camera)."""
        masks = batch.target_masks
        if masks is None:
            raise ValueError(
                "target_point needs batch.target_masks: use a dataset made with `vlaworks "
                "generate --segmentation`, whose per-frame target masks the data loader adds."
            )
        if masks.ndim != 4 or tuple(masks.shape[:2]) != (batch.images.shape[0], len(self.cameras)):
            raise ValueError(
                f"batch.target_masks must be [B, V, H, W] with V = {len(self.cameras)} cameras; got "
                f"{tuple(masks.shape)}."
            )
        return mask_centroids(masks)

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        centre, visible = self.targets(batch)
        pred, logit = self.predict(out)
        per_view = (pred - centre).abs().sum(-1) / 2  # [B, V], mean L1 over x and y
        seen = visible.float()
        l1 = (per_view * seen).sum(-1) / seen.sum(-1).clamp(min=1)
        bce = F.binary_cross_entropy_with_logits(logit, seen)
        total = l1.mean() + self.options.visibility_weight * bce
        metrics = {"l1": float(l1.detach().mean()), "vis_acc": float(((logit > 0) == visible).float().mean())}
        size = batch.target_masks.shape[-1]
        for view, camera in enumerate(self.cameras):
            n = int(visible[:, view].sum())
            if n:
                error = (per_view[:, view].detach() * seen[:, view]).sum() / n
                metrics[f"l1_px_{camera}"] = float(error) * size / 2  # [-1, 1] spans size px
        return total, metrics


#: the registry entry (``AUX_LOSSES["target_point"]``)
PART = Part(TargetPointOptions, TargetPointLoss.from_config)
