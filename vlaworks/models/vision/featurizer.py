"""Vision featurizers: images -> patch features ``[N, P, C]``.

A featurizer owns its towers and their preprocessing; a backbone only sees
``features(images)`` and ``out_dim``. The dual-encoder wrapper of seed 004 (frozen copy
⊕ trained copy) wraps any featurizer through the same two members.

A tower a backbone can build by name (``vision=...``) also says how it is built for a patch
grid (:meth:`VisionFeaturizer.tiny`) and how a backbone folder records and rebuilds it
(:meth:`~VisionFeaturizer.folder_meta`, :meth:`~VisionFeaturizer.from_folder_meta`), so a new
tower touches its own module and the backbone's table of towers, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import Dinov2Config, Dinov2Model, SiglipVisionConfig, SiglipVisionModel

from vlaworks.models.backbones.base import no_vision_levels
from vlaworks.models.vision.levels import tower_level_dims, vit_levels
from vlaworks.models.vision.preprocess import HALF, IMAGENET_MEAN, IMAGENET_STD, normalize_images


class VisionFeaturizer(nn.Module):
    """Interface: ``features(images uint8 [N, 3, H, W]) -> [N, P, out_dim]``."""

    out_dim: int
    #: the ``vision`` option naming this tower, and its key in a backbone folder's meta
    kind: ClassVar[str]

    @classmethod
    def tiny(cls, image_size: int, patch_size: int, attn_implementation: str) -> VisionFeaturizer:
        """The registry model's tower giving an ``image_size / patch_size`` grid per view."""
        raise NotImplementedError

    def folder_meta(self) -> dict[str, Any]:
        """The JSON entries a backbone folder stores to rebuild this tower (no weights)."""
        raise NotImplementedError

    @classmethod
    def holds(cls, meta: dict[str, Any]) -> bool:
        """Whether a backbone folder's ``meta`` describes this tower."""
        return cls.kind in meta

    @classmethod
    def from_folder_meta(cls, meta: dict[str, Any]) -> VisionFeaturizer:
        """A random-init tower of the architecture :meth:`folder_meta` wrote (weights load after)."""
        raise NotImplementedError

    @classmethod
    def folder_grid(cls, meta: dict[str, Any]) -> tuple[int, int]:
        """``(image_size, patch size or stride)`` of the tower ``meta`` describes (by default
        read from ``meta[kind]``'s ``image_size`` and ``stride``, as the conv towers record them)."""
        return meta[cls.kind]["image_size"], meta[cls.kind]["stride"]

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

    kind = "dinosiglip"

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

    @classmethod
    def tiny(cls, image_size: int, patch_size: int, attn_implementation: str) -> DinoSigLIPFeaturizer:
        """Random-init towers, hidden 64 x 2 layers each."""
        shared = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
        shared |= {"image_size": image_size, "patch_size": patch_size}
        dino = Dinov2Config(mlp_ratio=2, **shared)
        siglip = SiglipVisionConfig(intermediate_size=128, **shared)
        for tower in (dino, siglip):
            tower._attn_implementation = attn_implementation
        return cls.from_configs(dino, siglip)

    def folder_meta(self) -> dict[str, Any]:
        return {"dinov2": self.dino.config.to_dict(), "siglip": self.siglip.config.to_dict()}

    @classmethod
    def holds(cls, meta: dict[str, Any]) -> bool:
        return "siglip" in meta

    @classmethod
    def from_folder_meta(cls, meta: dict[str, Any]) -> DinoSigLIPFeaturizer:
        return cls.from_configs(Dinov2Config(**meta["dinov2"]), SiglipVisionConfig(**meta["siglip"]))

    @classmethod
    def folder_grid(cls, meta: dict[str, Any]) -> tuple[int, int]:
        return meta["siglip"]["image_size"], meta["siglip"]["patch_size"]

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
