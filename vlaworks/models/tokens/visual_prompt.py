"""PixelVLA's visual prompt-aware encoder (seed 000, section 4.1), SAM's prompt encoder style.

User prompts ``V`` (``Batch.visual_prompts``: points, lines, boxes, masks in normalised image
coordinates) become prompt features ``F_s in R^{N_s x D_s}``: continuous positional
embeddings of their coordinates combined with learned prompt-type embeddings, then an MLP
maps them to the LM width, ``E_s = MLP(F_s)``, placed in the sequence as one causal block.

* positional embedding (SAM's ``PositionEmbeddingRandom``): a coordinate ``c in [0, 1]^2``
  becomes ``[sin(2π (2c - 1) G), cos(2π (2c - 1) G)]`` with a fixed Gaussian matrix
  ``G in R^{2 x D_s/2}`` (a saved buffer);
* type embeddings (learned): point, line start / end, box top-left / bottom-right corner,
  mask cell, and "not a prompt" (SAM's ``not_a_point_embed``) for padding; a learned view
  embedding says which camera the prompt is drawn on;
* a point is one token, a line its two end points, a box its two corners; a mask goes
  through SAM's small mask-downscaling conv stack (two stride-2 convs with LayerNorm and
  GELU, a 1 x 1 conv to ``D_s``) and becomes one token per cell of a ``mask_grid x
  mask_grid`` grid: the conv features averaged over the mask's part of the cell, at the
  positional embedding of that part's centroid; cells the mask does not touch are padding.
  (SAM adds its dense mask embedding to the image grid, so location survives; a token must
  carry it. Pooling whole cells instead left a small object's token within ~5 % of the
  empty cell's, the same for either of two twins, and a trained policy ignored it:
  BENCHMARKS.md, PixelVLA's prompt modes.)

Every row gets the same number of tokens, ``max_prompts x max(2, mask_grid²)``, its prompts
first and "not a prompt" tokens after, so a row's embeddings never depend on the other
rows of its batch and a row without prompts (text only) is all padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch, VisualPrompt
from vlaworks.models.backbones.base import Backbone, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.tokens.base import TokenSource

PROMPT_BLOCK = "visual_prompt"
#: learned type embeddings, by index
TYPES = ("point", "line_start", "line_end", "box_corner_tl", "box_corner_br", "mask", "not_a_prompt")
_TYPE = {name: i for i, name in enumerate(TYPES)}
#: the coordinate tokens of each coordinate prompt kind
_KIND_TYPES = {
    "point": ("point",),
    "line": ("line_start", "line_end"),
    "box": ("box_corner_tl", "box_corner_br"),
}


@dataclass
class VisualPromptOptions:
    """Options of the ``visual_prompt`` token source."""

    #: ``D_s``, the prompt feature width (even)
    width: int = 128
    #: prompts per row (more is an error); each takes ``max(2, mask_grid**2)`` tokens
    max_prompts: int = 1
    #: a mask prompt becomes ``mask_grid x mask_grid`` tokens
    mask_grid: int = 2
    #: standard deviation of the fixed Gaussian positional-encoding matrix (SAM: 1)
    pe_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 2 or self.width % 2:
            raise ValueError(f"visual_prompt width must be even and >= 2; got {self.width}.")
        if self.max_prompts < 1 or self.mask_grid < 1:
            raise ValueError(
                "visual_prompt max_prompts and mask_grid must be >= 1; "
                f"got {self.max_prompts}, {self.mask_grid}."
            )


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``[N, C, H, W]`` maps (SAM's)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class VisualPromptTokens(TokenSource):
    """SAM-style prompt encoder + MLP to the LM width (module docstring)."""

    def __init__(self, hidden_size: int, views: int, options: VisualPromptOptions) -> None:
        super().__init__()
        width = options.width
        self.hidden_size = hidden_size
        self.views = views
        self.max_prompts = options.max_prompts
        self.mask_grid = options.mask_grid
        self.slot = max(2, options.mask_grid**2)
        self.register_buffer("gaussian", options.pe_scale * torch.randn(2, width // 2))
        self.type_embed = nn.Embedding(len(TYPES), width)
        self.view_embed = nn.Embedding(views, width)
        quarter = max(1, width // 4)
        self.mask_conv = nn.Sequential(
            nn.Conv2d(1, quarter, kernel_size=2, stride=2),
            LayerNorm2d(quarter),
            nn.GELU(),
            nn.Conv2d(quarter, width, kernel_size=2, stride=2),
            LayerNorm2d(width),
            nn.GELU(),
            nn.Conv2d(width, width, kernel_size=1),
        )
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
        )

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: VisualPromptOptions
    ) -> VisualPromptTokens:
        """Registry builder: LM width from the backbone, one view embedding per camera."""
        return cls(backbone.hidden_size, len(config.cameras), options)

    @property
    def length(self) -> int:
        """Tokens per row, ``N_s``."""
        return self.max_prompts * self.slot

    def positional(self, coords: torch.Tensor) -> torch.Tensor:
        """SAM's random Fourier features of normalised ``coords`` ``[..., 2]`` -> ``[..., D_s]``."""
        angle = 2 * math.pi * (2 * coords.to(self.gaussian.dtype) - 1) @ self.gaussian
        return torch.cat([angle.sin(), angle.cos()], dim=-1)

    def encode(self, prompts: list[list[VisualPrompt]]) -> torch.Tensor:
        """Prompt features ``F_s`` ``[B, N_s, D_s]`` (padding with "not a prompt")."""
        device = self.gaussian.device
        b, n = len(prompts), self.length
        coords = torch.zeros(b, n, 2)
        types = torch.full((b, n), _TYPE["not_a_prompt"], dtype=torch.long)
        views = torch.zeros(b, n, dtype=torch.long)
        masks: list[tuple[int, int, int, torch.Tensor]] = []  # (row, first token, view, mask)
        for row, row_prompts in enumerate(prompts):
            if len(row_prompts) > self.max_prompts:
                raise ValueError(
                    f"A batch row has {len(row_prompts)} visual prompts; this encoder takes at most "
                    f"{self.max_prompts} (policy.token_sources visual_prompt option max_prompts)."
                )
            for k, prompt in enumerate(row_prompts):
                start = k * self.slot
                if not 0 <= prompt.view < self.views:
                    raise ValueError(
                        f"Visual prompt view {prompt.view} is not one of the policy's {self.views} views."
                    )
                if prompt.kind == "mask":
                    if prompt.mask is None or prompt.mask.ndim != 2:
                        raise ValueError("A mask visual prompt needs mask, an [H, W] bool tensor.")
                    masks.append((row, start, prompt.view, prompt.mask))
                    continue
                names = _KIND_TYPES.get(prompt.kind)
                if names is None:
                    raise ValueError(
                        f"Unknown visual prompt kind {prompt.kind!r}; use point, line, box or mask."
                    )
                if len(prompt.coords) != len(names):
                    raise ValueError(
                        f"A {prompt.kind} prompt needs {len(names)} [x, y] coordinates; got {prompt.coords}."
                    )
                for j, name in enumerate(names):
                    coords[row, start + j] = torch.tensor(prompt.coords[j])
                    types[row, start + j] = _TYPE[name]
                    views[row, start + j] = prompt.view
        coords, types, views = coords.to(device), types.to(device), views.to(device)
        is_prompt = (types != _TYPE["not_a_prompt"]).unsqueeze(-1)
        feats = self.type_embed(types) + is_prompt * (self.positional(coords) + self.view_embed(views))
        if masks:
            feats = feats.clone()
            cells, touched = self.mask_cells(torch.stack([m for *_, m in masks]).to(device))
            grid = self.mask_grid**2
            for (row, start, view, _), cell, hit in zip(masks, cells, touched, strict=True):
                view_type = self.view_embed.weight[view] + self.type_embed.weight[_TYPE["mask"]]
                feats[row, start : start + grid] = torch.where(
                    hit[:, None], cell + view_type, feats[row, start : start + grid]
                )
        return feats

    def mask_cells(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask prompts ``[M, H, W]`` -> cell features ``[M, mask_grid², D_s]`` and which
        cells the mask touches (bool ``[M, mask_grid²]``). A touched cell's feature is the
        conv features averaged over the mask's part of the cell (weighted by how much of each
        feature pixel the mask covers) plus the positional embedding of that part's centroid,
        so neither the object's size nor its place inside the cell is averaged away."""
        dtype = self.mask_conv[0].weight.dtype
        m = masks[:, None].to(torch.float32)
        x = self.mask_conv(m.to(dtype)).float()
        g = self.mask_grid
        cover = F.adaptive_avg_pool2d(m, x.shape[-2:])
        weight = F.adaptive_avg_pool2d(cover, (g, g))
        feats = F.adaptive_avg_pool2d(x * cover, (g, g)) / weight.clamp_min(1e-12)
        h, w = masks.shape[-2:]
        ys = ((torch.arange(h, device=masks.device) + 0.5) / h)[:, None].expand(h, w)
        xs = ((torch.arange(w, device=masks.device) + 0.5) / w)[None, :].expand(h, w)
        area = F.adaptive_avg_pool2d(m, (g, g))
        centre = torch.cat(
            [F.adaptive_avg_pool2d(m * xs, (g, g)), F.adaptive_avg_pool2d(m * ys, (g, g))], dim=1
        ) / area.clamp_min(1e-12)
        cells = feats.flatten(2).transpose(1, 2) + self.positional(centre.flatten(2).transpose(1, 2))
        return cells.to(dtype), area.flatten(1) > 0

    def tokens(self, batch: Batch, backbone: Backbone) -> list[ExtraTokens]:
        if batch.visual_prompts is None:
            raise ValueError(
                "The visual_prompt token source needs batch.visual_prompts; set policy.prompt_mode so the "
                "processor adds them."
            )
        if len(batch.visual_prompts) != batch.size:
            raise ValueError(
                f"Batch has {batch.size} rows but {len(batch.visual_prompts)} visual prompt lists."
            )
        if backbone.hidden_size != self.hidden_size:
            raise ValueError(
                f"VisualPromptTokens was built for width {self.hidden_size}, "
                f"asked for {backbone.hidden_size}."
            )
        feats = self.encode(batch.visual_prompts)
        return [ExtraTokens(PROMPT_BLOCK, embeds=self.mlp(feats.to(self.mlp[0].weight.dtype)))]


#: the registry entry (``TOKEN_SOURCES["visual_prompt"]``)
PART = Part(VisualPromptOptions, VisualPromptTokens.from_config)
