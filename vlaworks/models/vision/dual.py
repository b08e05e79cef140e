"""Partially frozen dual vision encoder (seed 004, III-A): ``z = [phi_frozen(o) || phi_train(o)]``.

:func:`make_dual_encoder` turns a backbone's vision encoder(s) into two siamese copies in
place: the original keeps training, a deep copy is frozen (``requires_grad=False``, always
in eval mode, run under ``no_grad``) and anchors the pretrained features. Their outputs
are concatenated on channels, frozen half first, and the layer that reads them (the
projector's first linear layer) is widened to the doubled input width.

Projector initialisation: *duplicate and halve*, ``W' = [W / 2 || W / 2]`` (bias kept).
At initialisation both copies are identical, so ``W' z = W f``: the widened model computes
exactly what the pretrained VLM computed (no loss jump at the start of fine-tuning), and
the frozen features already carry half of the projector's input instead of starting
from zero (the alternative ``[0 || W]`` would let the trained copy dominate and the
frozen anchor enter only as fast as its zero block learns, against the point of D).

Supported backbones (``vision_modules()`` of each then returns the dual module):

* Prismatic: the DINOv2 ⊕ SigLIP featurizer becomes :class:`DualFeaturizer` (frozen
  copies of both towers) and ``projector[0]`` is widened;
* PaliGemma 1 / 2: the SigLIP ``vision_tower`` becomes :class:`DualTower` and the
  ``multi_modal_projector.linear`` is widened.

The switch is the backbone option ``dual_encoder`` (``PolicyConfig.backbone_options``, a
field of every family's options dataclass); ``build_policy`` applies it after building
(and, for from-scratch runs, re-initialising) the backbone, so a checkpoint rebuilds the
same module tree and the frozen copy's weights load from it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vlaworks.models.vision.featurizer import VisionFeaturizer


class DualVision(nn.Module):
    """Holds a ``trained`` encoder and its ``frozen`` deep copy; the copy never trains."""

    def __init__(self, trained: nn.Module) -> None:
        super().__init__()
        if isinstance(trained, DualVision):
            raise ValueError("This vision encoder is already dual; apply make_dual_encoder once.")
        self.frozen = copy.deepcopy(trained)
        self.trained = trained
        self.frozen.requires_grad_(False)
        self.frozen.eval()

    def train(self, mode: bool = True) -> DualVision:
        """Switch the trained copy's mode; the frozen copy stays in eval mode (no dropout)."""
        super().train(mode)
        self.frozen.eval()
        return self


class DualFeaturizer(DualVision, VisionFeaturizer):
    """Prismatic featurizer pair: ``[frozen.features || trained.features]`` on channels."""

    def __init__(self, trained: VisionFeaturizer) -> None:
        super().__init__(trained)
        self.out_dim = 2 * int(trained.out_dim)
        self.num_patches = int(getattr(trained, "num_patches", 0))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            anchor = self.frozen.features(images)
        return torch.cat([anchor, self.trained.features(images)], dim=-1)


class DualTower(DualVision):
    """Hugging Face vision tower pair returning ``last_hidden_state = [frozen || trained]``."""

    def __init__(self, trained: nn.Module) -> None:
        super().__init__(trained)
        self.config = trained.config

    def forward(self, pixel_values: torch.Tensor, **kwargs: Any) -> BaseModelOutputWithPooling:
        with torch.no_grad():
            anchor = self.frozen(pixel_values, **kwargs).last_hidden_state
        out = self.trained(pixel_values, **kwargs)
        joint = torch.cat([anchor, out.last_hidden_state], dim=-1)
        return BaseModelOutputWithPooling(last_hidden_state=joint)


def widen_linear(linear: nn.Linear) -> nn.Linear:
    """A linear layer reading ``[frozen || trained]`` (twice the input width) initialised to
    ``[W / 2 || W / 2]`` with the same bias, so it equals ``linear`` while both halves agree."""
    weight = linear.weight.detach()
    wide = nn.Linear(2 * linear.in_features, linear.out_features, bias=linear.bias is not None)
    wide.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(torch.cat([weight / 2, weight / 2], dim=1))
        if linear.bias is not None:
            wide.bias.copy_(linear.bias.detach())
    return wide


def make_dual_encoder(backbone: nn.Module) -> None:
    """Give ``backbone`` a frozen ⊕ trained vision encoder and a widened projector (in place)."""
    from vlaworks.models.backbones.families.paligemma import PaliGemmaBackbone
    from vlaworks.models.backbones.families.prismatic import PrismaticBackbone

    if isinstance(backbone, PrismaticBackbone):
        backbone.featurizer = DualFeaturizer(backbone.featurizer)
        backbone.projector[0] = widen_linear(backbone.projector[0])
    elif isinstance(backbone, PaliGemmaBackbone):
        inner = backbone.model.model
        inner.vision_tower = DualTower(inner.vision_tower)
        inner.multi_modal_projector.linear = widen_linear(inner.multi_modal_projector.linear)
    else:
        raise ValueError(
            f"The dual vision encoder supports Prismatic and PaliGemma backbones; got "
            f"{type(backbone).__name__}. Drop the backbone option dual_encoder for this backbone."
        )


def is_dual(backbone: nn.Module) -> bool:
    """Whether ``backbone`` holds a dual vision encoder."""
    return any(isinstance(m, DualVision) for m in backbone.modules())


def freeze_frozen_copies(module: nn.Module) -> None:
    """Re-freeze (``requires_grad=False``, eval mode) every dual encoder's frozen copy inside
    ``module``; ``set_trainable`` calls it after applying the config's other switches."""
    for sub in module.modules():
        if isinstance(sub, DualVision):
            sub.frozen.requires_grad_(False)
            sub.frozen.eval()
