"""PokeVLA's goal-aware segmentation loss ``seg_mask`` (seed 001, §V-B "Training Objectives").

The ``<SEG>`` block's last-layer hidden state (``seg`` token source) goes through a
two-layer projector (LISA's ``text_hidden_fcs``: Linear -> ReLU -> Linear) to the mask
decoder's width and prompts the coarse-to-fine SAM-style decoder
(:mod:`vlaworks.models.seg_decoder`) on every camera view, one shared prompt for all
views. Both stages are supervised with the ground-truth mask of the manipulation target
(``Batch.target_masks``, from the world's segmentation; ``vlaworks generate --segmentation``)
resized to the mask resolution (a cell is set when at least half of it is), with Eq. 4::

    L_seg = Σ_{stage ∈ {coarse, fine}}  λ_focal · L_focal(M_stage, M_gt) + λ_KL · L_KL(M_stage, M_gt)

* ``L_focal``: the sigmoid focal loss of RetinaNet / SAM (α = 0.25, γ = 2), mean over pixels,
  views and rows;
* ``L_KL``: KL(P_gt || P_pred) between the ground truth as a distribution over the view's
  pixels (the mask normalised to sum 1) and the softmax of the logits over those pixels,
  averaged over the views whose target is visible (a view without the target has no
  distribution and only the focal term). The paper names a "Kullback-Leibler divergence
  loss" on masks without more detail; a per-pixel Bernoulli KL to binary ground truth would
  equal the (unfocused) BCE, so the spatial reading, which adds a term the focal loss
  lacks (where in the view the mass lies), is the one implemented.

Weights: the seed's text lost Eq. 4's symbols and the values of §V-D ("we set the
hyperparameters as follows: ."), so the paper's λ are unknown here. Defaults are SAM's
ratio between its per-pixel focal and its region loss, 20 : 1 (λ_focal = 20, λ_KL = 1),
with the whole term at ``weight`` = 1 in the policy's loss (Eq. 8); all three are options.

Metrics (per step, names prefixed ``seg_mask/`` by the policy): the four loss terms and
the mask IoU (logits > 0 against the resized ground truth, pooled over the batch) per
stage and view, ``iou_coarse_<camera>`` / ``iou_fine_<camera>``, left out for a view whose
union is empty in that batch. :func:`vlaworks.eval.masks.mask_iou` scores held-out demos.

On any recipe (the ``token_sources`` list is replaced as a whole, so keep the recipe's own;
``vlm4vla+proprio`` has ``proprio``), on a dataset made with ``vlaworks generate --segmentation``::

    vlaworks train --recipe vlm4vla+proprio --data DATA --out RUN --cameras base,wrist \
        --set 'policy.token_sources=[{"type": "proprio"}, {"type": "seg"}]' \
        --set 'policy.aux_losses=[{"type": "seg_mask"}]'

(options as ``{"type": "seg_mask", "options": {"weight": 0.5, "grid": 16}}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.policy import AuxLoss
from vlaworks.models.seg_decoder import CoarseToFineDecoder, build_decoder
from vlaworks.models.tokens.seg import SEG_BLOCK

STAGES = ("coarse", "fine")


@dataclass
class SegMaskOptions:
    """Options of the ``seg_mask`` auxiliary loss (module docstring for the loss)."""

    #: weight of L_seg in the policy's total loss
    weight: float = 1.0
    #: λ_focal and λ_KL of Eq. 4
    focal_weight: float = 20.0
    kl_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    #: dense image encoder: "conv" (small, trained jointly) or "sam" (a local HF SAM folder)
    encoder: Literal["conv", "sam"] = "conv"
    sam_path: str | None = None
    #: train the SAM checkpoint's vision encoder too (LISA keeps it frozen)
    train_sam_encoder: bool = False
    #: conv path: decoder width, feature grid side and attention heads; masks are 4 x grid
    #: (8: a 64 px conv input and 32 x 32 masks for the miniature world's 64 px views; 16
    #: doubles the mask side at about 8x the decoder's CPU time)
    width: int = 64
    grid: int = 8
    heads: int = 4

    def __post_init__(self) -> None:
        if self.weight <= 0 or self.focal_weight < 0 or self.kl_weight < 0:
            raise ValueError(
                f"seg_mask needs weight > 0 and focal_weight, kl_weight >= 0; got {self.weight}, "
                f"{self.focal_weight}, {self.kl_weight}."
            )
        if not 0 <= self.focal_alpha <= 1 or self.focal_gamma < 0:
            raise ValueError(
                f"seg_mask needs 0 <= focal_alpha <= 1 and focal_gamma >= 0; got {self.focal_alpha}, "
                f"{self.focal_gamma}."
            )
        if self.grid < 1:
            raise ValueError(f"seg_mask grid must be >= 1; got {self.grid}.")
        if (self.encoder == "sam") != (self.sam_path is not None):
            raise ValueError(
                "seg_mask: set sam_path exactly when encoder='sam' (a local SAM checkpoint folder)."
            )


def sigmoid_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Per-pixel sigmoid focal loss (Lin et al., as in SAM / torchvision), same shape as
    ``logits``; ``target`` in {0, 1} (or soft)."""
    target = target.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return alpha_t * ce * (1 - p_t) ** gamma


def spatial_kl_loss(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(P_gt || softmax(logits)) over the last two (pixel) dims, per leading index, and a
    bool of where it is defined (a non-empty target); undefined entries are 0."""
    flat_logits = logits.flatten(-2).float()
    flat_target = target.flatten(-2).float()
    mass = flat_target.sum(-1)
    valid = mass > 0
    p_gt = flat_target / mass.clamp(min=1e-12)[..., None]
    log_pred = torch.log_softmax(flat_logits, dim=-1)
    terms = torch.where(p_gt > 0, p_gt * (torch.log(p_gt.clamp(min=1e-12)) - log_pred), 0.0)
    return torch.where(valid, terms.sum(-1), 0.0), valid


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Bool masks ``[..., H, W]`` at ``size`` square: a cell is set when at least half of
    the area it covers is (nearest neighbour when enlarging)."""
    lead = masks.shape[:-2]
    pooled = F.adaptive_avg_pool2d(masks.reshape(-1, 1, *masks.shape[-2:]).float(), (size, size))
    return (pooled >= 0.5).reshape(*lead, size, size)


def overlap(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union pixel counts of ``logits > 0`` and the bool ``target`` over
    the last two dims."""
    pred = logits > 0
    target = target.bool()
    return (pred & target).flatten(-2).sum(-1), (pred | target).flatten(-2).sum(-1)


class SegMaskLoss(AuxLoss):
    """The ``<SEG>`` projector, the coarse-to-fine mask decoder and Eq. 4 (module docstring)."""

    def __init__(self, hidden_size: int, cameras: tuple[str, ...], options: SegMaskOptions) -> None:
        super().__init__()
        self.weight = options.weight
        self.cameras = tuple(cameras)
        self.options = options
        self.decoder: CoarseToFineDecoder = build_decoder(
            options.encoder,
            width=options.width,
            grid=options.grid,
            heads=options.heads,
            sam_path=options.sam_path,
            train_sam_encoder=options.train_sam_encoder,
        )
        width = self.decoder.width
        self.project = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, width)
        )

    @classmethod
    def from_config(cls, backbone: Backbone, config: PolicyConfig, options: SegMaskOptions) -> SegMaskLoss:
        """Registry builder: needs the ``seg`` token source in the same config."""
        if not any(s.type == "seg" for s in config.token_sources):
            raise ValueError(
                "The seg_mask aux loss reads the <SEG> token; add {\"type\": \"seg\"} to "
                "policy.token_sources."
            )
        return cls(backbone.hidden_size, config.cameras, options)

    @property
    def mask_size(self) -> int:
        return self.decoder.mask_size

    def masks(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Coarse and fine mask logits ``[B, V, m, m]`` of every view, from the ``<SEG>``
        block's last hidden state in ``out``."""
        if SEG_BLOCK not in out.spans:
            raise ValueError("The backbone output has no 'seg' block; the policy needs the seg token source.")
        b, v = batch.images.shape[:2]
        seg = out.hidden[:, out.spans[SEG_BLOCK]]  # [B, 1, hidden]
        dtype = self.project[0].weight.dtype
        prompt = self.project(seg.to(dtype)).repeat_interleave(v, dim=0)  # [B * V, 1, width]
        coarse, fine = self.decoder(batch.images.flatten(0, 1), prompt)
        m = self.mask_size
        return coarse.reshape(b, v, m, m), fine.reshape(b, v, m, m)

    def stage_loss(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unweighted (focal, KL) of one stage's logits ``[B, V, m, m]`` against bool targets."""
        focal = sigmoid_focal_loss(logits.float(), target, self.options.focal_alpha, self.options.focal_gamma)
        kl, valid = spatial_kl_loss(logits, target)
        kl_mean = kl.sum() / valid.sum() if bool(valid.any()) else kl.sum()
        return focal.mean(), kl_mean

    def target(self, batch: Batch) -> torch.Tensor:
        """The batch's target masks at the mask resolution, bool ``[B, V, m, m]``."""
        masks = batch.target_masks
        if masks is None:
            raise ValueError(
                "seg_mask needs batch.target_masks: train on a dataset made with `vlaworks generate "
                "--segmentation` (or --depth), whose per-frame target masks the data loader adds."
            )
        if masks.ndim != 4 or tuple(masks.shape[:2]) != tuple(batch.images.shape[:2]):
            raise ValueError(
                f"batch.target_masks must be [B, V, H, W] matching the images' "
                f"{tuple(batch.images.shape[:2])}; got {tuple(masks.shape)}."
            )
        return resize_masks(masks, self.mask_size)

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.target(batch)
        logits = dict(zip(STAGES, self.masks(out, batch), strict=True))
        total = torch.zeros((), device=target.device)
        metrics: dict[str, float] = {}
        for stage, stage_logits in logits.items():
            focal, kl = self.stage_loss(stage_logits, target)
            total = total + self.options.focal_weight * focal + self.options.kl_weight * kl
            metrics[f"focal_{stage}"] = float(focal.detach())
            metrics[f"kl_{stage}"] = float(kl.detach())
            inter, union = overlap(stage_logits.detach(), target)
            for view, camera in enumerate(self.cameras):
                u = int(union[:, view].sum())
                if u > 0:
                    metrics[f"iou_{stage}_{camera}"] = int(inter[:, view].sum()) / u
        return total, metrics


#: the registry entry (``AUX_LOSSES["seg_mask"]``)
PART = Part(SegMaskOptions, SegMaskLoss.from_config)
