"""SAM-style coarse-to-fine mask decoder prompted by the ``<SEG>`` embedding (seed 001, §V-B).

PokeVLA (following LISA) feeds the ``<SEG>`` token's last hidden state, projected to the
decoder width, to SAM's prompt encoder as a sparse prompt, and decodes every camera view
in two stages over that view's dense image features ``F_v`` (Eq. 1):

* coarse (Eq. 2): sparse = the ``<SEG>`` prompt, dense = SAM's "no mask" embedding ->
  the coarse mask decoder -> low-resolution logits ``M_c``;
* fine (Eq. 3): ``M_c`` is the mask prompt: SAM's mask embedding (strided convs) turns the
  logits into a dense prompt added to ``F_v``, and the fine mask decoder (same sparse
  prompt) gives the fine logits ``M_f``.

Both decoders are ``transformers``' :class:`SamMaskDecoder` (two-way transformer between
prompt tokens and image features, 4x transposed-conv upsampling, hypernetwork MLP on the
mask token; single-mask output) and the prompts go through :class:`SamPromptEncoder`'s
``no_mask_embed`` / ``mask_embed``, so a SAM checkpoint's decoder drops in unchanged.
Masks come out at ``4 x grid`` pixels per side, ``grid`` being the image features' side.

The image encoder is pluggable (``encoder``):

* ``"conv"`` (default): a small strided conv net (three stride-2 convs, ``grid x 8``
  pixel input) trained jointly with the decoders. The paper uses SAM's ViT encoder; a
  separate dense encoder is kept here too (rather than the backbone's vision tokens) so
  the mask branch matches the paper's structure, and a conv net is what the 128 px
  miniature world can train from scratch in minutes.
* ``"sam"``: a Hugging Face SAM checkpoint folder (``SamModel.from_pretrained``, nothing
  downloaded): its vision encoder (frozen unless ``train_sam_encoder``, as LISA freezes
  SAM's encoder), prompt encoder and mask decoder, the latter copied for the fine stage.
  Views are resized to the checkpoint's ``image_size`` and normalised with SAM's ImageNet
  mean / std (``SamImageProcessor``'s defaults); the mask side is then ``4 x``
  ``image_size / patch_size``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SamConfig, SamModel
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.models.sam.modeling_sam import SamMaskDecoder, SamPromptEncoder

Encoder = Literal["conv", "sam"]

#: stride of the conv encoder (three stride-2 convs): input side = grid x this
CONV_STRIDE = 8


def normalised_pixels(images: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` views resized to ``size`` square (antialiased bilinear) and
    normalised with SAM's ImageNet mean / std."""
    pixels = images.to(dtype) / 255.0
    if pixels.shape[-2:] != (size, size):
        pixels = F.interpolate(
            pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, dtype=dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD, dtype=dtype, device=images.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


class ConvImageEncoder(nn.Module):
    """The miniature world's dense image encoder: uint8 views -> ``[N, width, grid, grid]``."""

    def __init__(self, width: int, grid: int) -> None:
        super().__init__()
        self.input_size = grid * CONV_STRIDE
        channels = (3, 32, 64, width)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.GELU()]
        layers.append(nn.Conv2d(width, width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(normalised_pixels(images, self.input_size, self.net[0].weight.dtype))


class SamImageEncoder(nn.Module):
    """A Hugging Face SAM vision encoder on uint8 views (frozen unless ``trainable``: then it
    runs without autograd, so no gradient reaches it whatever ``requires_grad`` says)."""

    def __init__(self, encoder: nn.Module, image_size: int, trainable: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_size = image_size
        self.trainable = trainable

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        dtype = next(self.encoder.parameters()).dtype
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            return self.encoder(normalised_pixels(images, self.image_size, dtype))[0]


class CoarseToFineDecoder(nn.Module):
    """Image encoder + SAM prompt encoder + coarse and fine SAM mask decoders (module doc)."""

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: SamPromptEncoder,
        coarse: SamMaskDecoder,
        fine: SamMaskDecoder,
        grid: int,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.coarse = coarse
        self.fine = fine
        self.grid = grid
        self.width = coarse.hidden_size

    @property
    def mask_size(self) -> int:
        """Side of the predicted masks (SAM's decoder upsamples its features 4x)."""
        return 4 * self.grid

    def image_positions(self) -> torch.Tensor:
        """SAM's dense positional encoding of the feature grid, ``[1, width, grid, grid]``
        (cell centres in [0, 1], the random Fourier features of the prompt encoder)."""
        table = self.prompt_encoder.shared_embedding.positional_embedding
        centres = (torch.arange(self.grid, device=table.device, dtype=table.dtype) + 0.5) / self.grid
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        encoded = self.prompt_encoder.shared_embedding(torch.stack([x, y], dim=-1)[None])
        return encoded[0].permute(2, 0, 1)[None]

    def forward(self, images: torch.Tensor, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coarse and fine mask logits ``[N, mask_size, mask_size]`` for uint8 views
        ``[N, 3, H, W]`` and sparse prompt tokens ``[N, k, width]`` (one per view)."""
        features = self.image_encoder(images)
        n = features.shape[0]
        if tuple(features.shape[1:]) != (self.width, self.grid, self.grid):
            raise ValueError(
                f"The image encoder gave features {tuple(features.shape[1:])}; the decoder expects "
                f"({self.width}, {self.grid}, {self.grid})."
            )
        prompts = prompts.to(features.dtype)
        positions = self.image_positions().to(features.dtype).expand(n, -1, -1, -1)
        sparse = prompts[:, None]  # one prompt set (point batch) per view
        no_mask = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = no_mask.to(features.dtype).expand(n, -1, self.grid, self.grid)
        coarse, _ = self.coarse(features, positions, sparse, dense, multimask_output=False)
        coarse = coarse[:, 0]  # [N, 1, m, m]
        refined = self.prompt_encoder.mask_embed(coarse)
        fine, _ = self.fine(features, positions, sparse, refined, multimask_output=False)
        return coarse[:, 0], fine[:, 0, 0]


def tiny_sam_config(width: int, grid: int, heads: int = 4, mlp_dim: int | None = None) -> SamConfig:
    """A small :class:`SamConfig` whose prompt encoder and mask decoder work at ``width``
    channels on a ``grid x grid`` feature map (the vision part is unused by the conv path)."""
    if width % 2 or width % heads or width < 16:
        raise ValueError(
            f"The mask decoder width must be >= 16, even and divisible by heads={heads}; got {width}."
        )
    patch = 16
    return SamConfig(
        vision_config={"output_channels": width, "num_pos_feats": width // 2, "image_size": grid * patch,
                       "patch_size": patch},
        prompt_encoder_config={"hidden_size": width, "image_size": grid * patch, "patch_size": patch},
        mask_decoder_config={
            "hidden_size": width,
            "mlp_dim": mlp_dim or 4 * width,
            "num_attention_heads": heads,
            "iou_head_hidden_dim": width,
        },
    )


def conv_decoder(width: int, grid: int, heads: int) -> CoarseToFineDecoder:
    """The default decoder: conv image encoder + freshly initialised SAM prompt encoder and
    mask decoders (positional features at SAM's original scale 1, not ``transformers``'
    ``vision hidden_size / 2``, which only a checkpoint's values override)."""
    config = tiny_sam_config(width, grid, heads)
    config.mask_decoder_config._attn_implementation = "sdpa"
    prompt_encoder = SamPromptEncoder(config)
    nn.init.normal_(prompt_encoder.shared_embedding.positional_embedding, std=1.0)
    coarse = SamMaskDecoder(config.mask_decoder_config)
    fine = SamMaskDecoder(config.mask_decoder_config)
    return CoarseToFineDecoder(ConvImageEncoder(width, grid), prompt_encoder, coarse, fine, grid)


def sam_decoder(path: str | Path, train_encoder: bool = False) -> CoarseToFineDecoder:
    """The decoder from a local Hugging Face SAM folder (``SamModel.save_pretrained`` layout):
    its vision encoder, prompt encoder, and mask decoder for the coarse stage and a copy of
    it for the fine stage."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"No SAM checkpoint at {folder} (config.json missing); pass a folder written by "
            "transformers' SamModel.save_pretrained (nothing is downloaded)."
        )
    model = SamModel.from_pretrained(folder)
    config = model.config
    grid = config.prompt_encoder_config.image_embedding_size
    image_size = config.vision_config.image_size
    if not isinstance(grid, int) or not isinstance(image_size, int):
        raise ValueError(
            f"The SAM checkpoint at {folder} has a non-square image size {image_size!r}; use a square one."
        )
    encoder = SamImageEncoder(model.vision_encoder, image_size, train_encoder)
    fine = copy.deepcopy(model.mask_decoder)
    return CoarseToFineDecoder(encoder, model.prompt_encoder, model.mask_decoder, fine, grid)


def build_decoder(
    encoder: Encoder, *, width: int, grid: int, heads: int, sam_path: str | None, train_sam_encoder: bool
) -> CoarseToFineDecoder:
    """The decoder an aux-loss option set names (``encoder`` ``"conv"`` or ``"sam"``)."""
    if encoder == "conv":
        return conv_decoder(width, grid, heads)
    if encoder == "sam":
        if not sam_path:
            raise ValueError("encoder='sam' needs sam_path, a local SAM checkpoint folder.")
        return sam_decoder(sam_path, train_sam_encoder)
    raise ValueError(f"Unknown mask image encoder {encoder!r}; use 'conv' or 'sam'.")
