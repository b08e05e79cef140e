"""PixelVLA's multiscale pixel-aware encoder (seed 000, section 4.1, Eq. 3).

For each view the pixel mask ``p`` (``Batch.pixel_masks``, the target object's mask) pools
``L`` vision feature levels ``f_v^i`` of the backbone's vision tower, each level goes
through its own linear projection ``Γ^i``, the projections are summed and an MLP maps the
sum to one pixel-aware embedding per view in the LM's width::

    E_p = MLP( Σ_i Γ^i(f_p^i) ),    f_p^i = (p · f_v^i) / |p|                     (3)

``f_v^i`` lives on its own grid ``h_i x w_i``; the mask is area-pooled to that grid
(``w`` = the fraction of each cell the mask covers), so ``Σ w f / Σ w`` equals Eq. 3's
pixel-level average with each feature repeated over the pixels of its cell (exactly when
the image size is a multiple of the grid). A view whose mask is empty has ``f_p^i = 0``:
its embedding is ``MLP(Σ_i bias_i)``, a learned "no mask" token, so text-only rows keep
the same sequence layout. The block (``N_p`` = number of views tokens) is causal and sits
after the native prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.tokens.base import TokenSource
from vlaworks.models.vision.levels import check_levels

PIXEL_BLOCK = "pixel_aware"


@dataclass
class PixelAwareOptions:
    """Options of the ``pixel_aware`` token source."""

    #: the vision feature levels read (indices into the tower's levels, negative from the deepest)
    levels: tuple[int, ...] = (-3, -2, -1)
    #: hidden width of the output MLP (None: the LM width)
    mlp_width: int | None = None

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("pixel_aware levels must name at least one vision feature level.")
        if self.mlp_width is not None and self.mlp_width < 1:
            raise ValueError(f"pixel_aware mlp_width must be >= 1; got {self.mlp_width}.")


def masked_average(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 3's ``f_p = p · f / |p|``: features ``[B, V, C, h, w]`` averaged under pixel masks
    ``[B, V, H, W]`` (area-pooled to ``h x w``) -> ``[B, V, C]``; zero where a mask is empty."""
    b, v, c, h, w = features.shape
    weights = F.adaptive_avg_pool2d(mask.flatten(0, 1)[:, None].float(), (h, w)).reshape(b, v, h * w)
    weights = weights.to(features.dtype)
    pooled = torch.einsum("bvn,bvcn->bvc", weights, features.reshape(b, v, c, h * w))
    area = weights.sum(-1, keepdim=True)
    return torch.where(area > 0, pooled / area.clamp(min=torch.finfo(area.dtype).tiny), 0.0)


class PixelAwareTokens(TokenSource):
    """Eq. 3 over ``len(level_dims)`` levels: one embedding per view (module docstring)."""

    def __init__(
        self, level_dims: tuple[int, ...], levels: tuple[int, ...], hidden_size: int, mlp_width: int
    ) -> None:
        super().__init__()
        self.levels = tuple(check_levels(levels, len(level_dims)))
        self.hidden_size = hidden_size
        #: Γ^i, one linear projection per level
        self.gammas = nn.ModuleList(nn.Linear(level_dims[i], hidden_size) for i in self.levels)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, mlp_width), nn.GELU(), nn.Linear(mlp_width, hidden_size)
        )

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: PixelAwareOptions
    ) -> PixelAwareTokens:
        """Registry builder: level widths from the backbone (which must expose levels)."""
        width = options.mlp_width or backbone.hidden_size
        return cls(backbone.vision_level_dims(), options.levels, backbone.hidden_size, width)

    def embed(self, levels: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        """``E_p`` ``[B, V, hidden]`` from level features (each ``[B, V, C_i, h_i, w_i]``) and
        pixel masks ``[B, V, H, W]``."""
        dtype = self.mlp[0].weight.dtype
        summed = sum(
            gamma(masked_average(f.to(dtype), masks.to(f.device)))
            for gamma, f in zip(self.gammas, levels, strict=True)
        )
        return self.mlp(summed)

    def tokens(self, batch: Batch, backbone: Backbone) -> list[ExtraTokens]:
        if batch.pixel_masks is None:
            raise ValueError(
                "The pixel_aware token source needs batch.pixel_masks; set policy.prompt_mode so the "
                "processor adds them."
            )
        b, v = batch.images.shape[:2]
        if batch.pixel_masks.shape[:2] != (b, v) or batch.pixel_masks.ndim != 4:
            raise ValueError(
                f"batch.pixel_masks must be [B={b}, V={v}, H, W]; got {tuple(batch.pixel_masks.shape)}."
            )
        if backbone.hidden_size != self.hidden_size:
            raise ValueError(
                f"PixelAwareTokens was built for width {self.hidden_size}, asked for {backbone.hidden_size}."
            )
        levels = backbone.vision_levels(batch.images, self.levels)
        return [ExtraTokens(PIXEL_BLOCK, embeds=self.embed(levels, batch.pixel_masks))]


#: the registry entry (``TOKEN_SOURCES["pixel_aware"]``)
PART = Part(PixelAwareOptions, PixelAwareTokens.from_config)
