"""Training-time image augmentation: random shift and colour jitter on uint8 views.

Random shift (DrQ, robomimic's crop randomizer): each view is replicate-padded by
``shift`` pixels and cropped back to its size at a random offset, so the policy cannot
key on exact pixel positions of a few fixed-layout demonstrations. Colour jitter scales
brightness and contrast by a random factor in ``[1 - x, 1 + x]``.

Randomness comes from torch's global generator, which the sampler seeds per sample
(``vlaworks.train.sampler.load_sample``), so an augmented run is reproducible and resumes
exactly. Only the training window dataset applies it; evaluation, serving and offline
metrics never do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentOptions:
    """Which augmentations training applies (all off by default)."""

    #: random-shift padding in pixels (0: off)
    shift: int = 0
    #: brightness jitter: multiply by a factor in [1 - brightness, 1 + brightness] (0: off)
    brightness: float = 0.0
    #: contrast jitter: scale around the view's mean by a factor in [1 - contrast, 1 + contrast]
    contrast: float = 0.0

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise ValueError(f"augment.shift must be >= 0 pixels; got {self.shift}.")
        for name in ("brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1); got {value}.")

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.brightness > 0 or self.contrast > 0


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """``uint8 [V, 3, H, W]`` -> the same shape, each view shifted by up to ``pad`` px."""
    v, _, h, w = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (v,)).tolist()
    dx = torch.randint(0, 2 * pad + 1, (v,)).tolist()
    crops = [padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx, strict=True))]
    return torch.stack(crops).to(torch.uint8)


def color_jitter(images: torch.Tensor, brightness: float, contrast: float) -> torch.Tensor:
    """``uint8 [V, 3, H, W]`` with per-view random brightness and contrast factors."""
    v = images.shape[0]
    x = images.float()
    if brightness > 0:
        x = x * (1 + (torch.rand(v, 1, 1, 1) * 2 - 1) * brightness)
    if contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + (torch.rand(v, 1, 1, 1) * 2 - 1) * contrast) + mean
    return x.round().clamp(0, 255).to(torch.uint8)


def augment_views(images: torch.Tensor, options: AugmentOptions) -> torch.Tensor:
    """Apply ``options`` to one sample's views ``uint8 [V, 3, H, W]``."""
    if options.shift > 0:
        images = random_shift(images, options.shift)
    if options.brightness > 0 or options.contrast > 0:
        images = color_jitter(images, options.brightness, options.contrast)
    return images
