"""Vision featurizers: images -> patch features ``[N, P, C]``.

A featurizer owns its towers and their preprocessing; a backbone only sees
``features(images)`` and ``out_dim``. The dual-encoder wrapper of seed 004 (frozen copy
⊕ trained copy) wraps any featurizer through the same two members.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import Dinov2Config, Dinov2Model, SiglipVisionConfig, SiglipVisionModel

from vlaworks.models.backbones.base import no_vision_levels
from vlaworks.models.vision.levels import tower_level_dims, vit_levels
from vlaworks.models.vision.preprocess import HALF, IMAGENET_MEAN, IMAGENET_STD, normalize_images


class VisionFeaturizer(nn.Module):
    """Interface: ``features(images uint8 [N, 3, H, W]) -> [N, P, out_dim]``."""

    out_dim: int

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def level_dims(self) -> tuple[int, ...]:
        """Widths of the per-level features :meth:`levels` returns (none by default)."""
        raise no_vision_levels(self)

    def levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        """Per-level features ``[N, C_i, h_i, w_i]`` of uint8 ``images`` ``[N, 3, H, W]``."""
        raise no_vision_levels(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


class DinoSigLIPFeaturizer(VisionFeaturizer):
    """DINOv2 ⊕ SigLIP patch features concatenated on channels (Prismatic / PokeVLM).

    Both towers see the same image at their own resolution and normalisation; features
    come from the second-to-last layer (as Prismatic does), DINOv2's CLS token dropped.
    Both towers must yield the same patch grid.
    """

    def __init__(self, dino: Dinov2Model, siglip: SiglipVisionModel) -> None:
        super().__init__()
        self.dino = dino
        self.siglip = siglip
        dc, sc = dino.config, siglip.config
        if dc.image_size // dc.patch_size != sc.image_size // sc.patch_size:
            raise ValueError(
                f"DINOv2 grid {dc.image_size}/{dc.patch_size} != "
                f"SigLIP grid {sc.image_size}/{sc.patch_size}; "
                "pick image sizes giving the same number of patches."
            )
        self.out_dim = dc.hidden_size + sc.hidden_size
        self.num_patches = (sc.image_size // sc.patch_size) ** 2

    @classmethod
    def from_configs(cls, dino: Dinov2Config, siglip: SiglipVisionConfig) -> DinoSigLIPFeaturizer:
        siglip.vision_use_head = False
        return cls(Dinov2Model(dino), SiglipVisionModel(siglip))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        dtype = next(self.parameters()).dtype
        dc, sc = self.dino.config, self.siglip.config
        xd = normalize_images(images, dc.image_size, IMAGENET_MEAN, IMAGENET_STD, dtype)
        xs = normalize_images(images, sc.image_size, HALF, HALF, dtype)
        fd = self.dino(pixel_values=xd, output_hidden_states=True).hidden_states[-2][:, 1:]
        fs = self.siglip(pixel_values=xs, output_hidden_states=True).hidden_states[-2]
        return torch.cat([fd, fs], dim=-1)

    def level_dims(self) -> tuple[int, ...]:
        """SigLIP's levels (seed 000 reads the multi-level features of the SigLIP tower)."""
        return tower_level_dims(self.siglip.config)

    def levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        sc = self.siglip.config
        pixels = normalize_images(images, sc.image_size, HALF, HALF, next(self.parameters()).dtype)
        return vit_levels(self.siglip, pixels, levels)
