"""Batched image preprocessing in torch (no PIL, no torchvision in the training loop)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


def normalize_images(
    images: torch.Tensor,
    size: int | tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``[N, 3, H, W]`` uint8 (or float in 0..255) -> resized, normalised float ``[N, 3, h, w]``.

    Resizing is bilinear with antialiasing (like the HF image processors) and is skipped
    when the image already has the target size.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"Expected images [N, 3, H, W]; got {tuple(images.shape)}.")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    x = images.to(torch.float32)
    if tuple(x.shape[-2:]) != hw:
        x = F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False).clamp(0, 255)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1) * 255.0
    return ((x - m) / s).to(dtype)
